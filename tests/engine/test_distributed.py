"""bpviz under torch.distributed: two gloo ranks on CPU, each rank's values and the combined ones checked."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tests.engine.ranks import WORLD, every_scenario, spawn


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return spawn(every_scenario, tmp_path_factory.mktemp("ranks"))


@pytest.fixture(scope="module")
def ddp_run(runs):
    return [result["ddp"] for result in runs]


@pytest.fixture(scope="module")
def divergence_run(runs):
    return runs


def test_each_rank_measures_its_own_layers_under_the_inner_modules_names(ddp_run):
    for rank, result in enumerate(ddp_run):
        for step in result["steps"]:
            assert list(step["measured"]) == ["fc1", "relu()", "fc2"]  # no "module." from the DDP wrapper
            for name, expected in step["expected"].items():
                measured = step["measured"][name]
                for stat in ("mean", "std", "min", "max", "grad_norm"):
                    assert measured[stat] == pytest.approx(expected[stat], rel=1e-4, abs=1e-6), (rank, name, stat)


def test_ranks_see_different_batches(ddp_run):
    first = [result["steps"][0]["expected"]["fc1"]["mean"] for result in ddp_run]
    assert first[0] != pytest.approx(first[1])


def test_every_rank_holds_every_ranks_values_and_the_combination(ddp_run):
    for result in ddp_run:
        for index, step in enumerate(result["steps"]):
            table = step["table"]
            assert table.world_size == WORLD
            assert table.layers == ["fc1", "relu()", "fc2"]
            for name in table.layers:
                per_rank = [ddp_run[r]["steps"][index]["expected"][name] for r in range(WORLD)]
                for stat in ("mean", "std", "grad_norm"):
                    values = [p[stat] for p in per_rank]
                    assert table.of(name, stat) == pytest.approx(values, rel=1e-4, abs=1e-6)
                    assert table.mean(name, stat) == pytest.approx(np.mean(values), rel=1e-4, abs=1e-6)
                    assert table.max(name, stat) == pytest.approx(max(values), rel=1e-4, abs=1e-6)
                # the output's mean and std over both ranks' elements, from the ranks' own moments
                counts = np.array([p["count"] for p in per_rank], dtype=float)
                means = np.array([p["mean"] for p in per_rank])
                second = np.array([p["std"] ** 2 + p["mean"] ** 2 for p in per_rank])
                pooled_mean = (counts * means).sum() / counts.sum()
                pooled_std = math.sqrt((counts * second).sum() / counts.sum() - pooled_mean**2)
                assert table.pooled(name) == pytest.approx((pooled_mean, pooled_std), rel=1e-4, abs=1e-6)
            assert table.losses == pytest.approx([ddp_run[r]["steps"][index]["loss"] for r in range(WORLD)], rel=1e-5)


def test_one_collective_a_step(ddp_run):
    for result in ddp_run:
        assert [step["gathers"] for step in result["steps"]] == [1, 2, 3]


def test_report_carries_the_ranks(ddp_run):
    ranks = ddp_run[0]["report"]["ranks"]
    assert ranks["world_size"] == WORLD and ranks["rank"] == 0
    last = ddp_run[0]["steps"][-1]["expected"]
    fc2 = ranks["layers"]["fc2"]["grad_norm"]
    expected = [ddp_run[r]["steps"][-1]["expected"]["fc2"]["grad_norm"] for r in range(WORLD)]
    assert fc2["per_rank"] == pytest.approx(expected, rel=1e-4)
    assert fc2["max"] == pytest.approx(max(fc2["per_rank"]))
    assert last["fc2"]["grad_norm"] == pytest.approx(fc2["per_rank"][0], rel=1e-4)


def _divergences(result: dict) -> list[dict]:
    return [f for f in result["findings"] if f["kind"] == "rank_divergence"]


def test_healthy_ranks_raise_no_divergence(divergence_run):
    for result in divergence_run:
        assert _divergences(result["healthy"]) == []


def test_a_rank_with_scaled_data_is_named_at_the_first_layer(divergence_run):
    for result in divergence_run:  # every rank sees the same table and reaches the same verdict
        (finding,) = _divergences(result["drifted"])
        assert (finding["rank"], finding["layer"], finding["step"]) == (1, "fc1", 3)
        assert "Rank 1's output scale (RMS) at fc1" in finding["message"]


def test_a_rank_with_nan_is_named_at_the_layer_it_was_born_in(divergence_run):
    for result in divergence_run:
        (finding,) = _divergences(result["nan"])
        assert (finding["rank"], finding["layer"], finding["step"], finding["severity"]) == (1, "0", 2, "error")
        assert "on rank 1 at step 2" in finding["message"]


@pytest.fixture(scope="module")
def fsdp2_run(runs):
    return [result["fsdp2"] for result in runs]


def test_fsdp2_ranks_measure_their_layers_and_their_shards(fsdp2_run):
    for result in fsdp2_run:
        assert result["unmeasured"] == []  # nothing failed on the DTensor parameters
        for index, step in enumerate(result["steps"]):
            assert list(step["measured"]) == ["fc1", "relu()", "fc2"]
            for name, expected in step["expected"].items():
                for stat in ("mean", "std", "grad_norm"):
                    assert step["measured"][name][stat] == pytest.approx(expected[stat], rel=1e-4, abs=1e-6)
            # the recorded parameter norms are the full parameters', not this rank's shard's
            assert step["full_grads"] != pytest.approx(step["shard_grads"], rel=1e-3)
            for name, (grad, weight, numel) in step["params"].items():
                assert grad == pytest.approx(step["full_grads"][name], rel=1e-5)
                assert weight == pytest.approx(step["full_weights"][name], rel=1e-5)
                assert numel == step["full_numel"][name]
            for layer, sq in step["layer_sq"].items():
                measured = step["measured"][layer]
                assert measured["param_grad_norm"] == pytest.approx(math.sqrt(sq["grad"]), rel=1e-5)
                assert measured["weight_norm"] == pytest.approx(math.sqrt(sq["weight"]), rel=1e-5)
                assert measured["update_ratio"] == pytest.approx(math.sqrt(sq["update"] / sq["weight"]), rel=1e-4)
            table = step["table"]
            assert table.of("fc1", "std") == pytest.approx(
                [fsdp2_run[r]["steps"][index]["expected"]["fc1"]["std"] for r in range(WORLD)], rel=1e-4
            )


def test_each_rank_records_its_own_file_of_one_name(ddp_run):
    import bpviz

    paths = [Path(result["recorded"]) for result in ddp_run]
    assert paths[0].parent == paths[1].parent
    stem = paths[0].name.removesuffix(".rank0.bpviz")
    assert [p.name for p in paths] == [f"{stem}.rank{r}.bpviz" for r in range(WORLD)]
    for rank, path in enumerate(paths):
        with bpviz.open_run(path) as run:
            assert len(run) == 3
            for index, step in enumerate(ddp_run[rank]["steps"]):
                record = run.record(index)
                assert record.layer("fc1").mean == pytest.approx(step["expected"]["fc1"]["mean"], rel=1e-5)
                # the ranks' table is kept with the step, so a file alone shows every rank
                assert record.ranks.of("fc2", "grad_norm") == pytest.approx(step["table"].of("fc2", "grad_norm"))


def test_ranks_whose_layers_differ_line_up_by_name(runs):
    own = [result["uneven"]["own"] for result in runs]
    assert list(own[0]) == ["fc1", "relu()", "fc2"] and list(own[1]) == ["tanh()", "fc1", "relu()", "fc2"]
    first, second = (result["uneven"]["table"] for result in runs)
    assert first.layers == ["fc1", "relu()", "fc2"]  # rank 0 never saw tanh(): it has no name for it
    for name in first.layers:
        assert first.of(name, "std") == pytest.approx([own[0][name], own[1][name]], rel=1e-6)
    assert second.layers == ["tanh()", "fc1", "relu()", "fc2"]
    assert second.of("tanh()", "count")[0] == 0 and np.isnan(second.of("tanh()", "std")[0])
    assert second.of("tanh()", "std")[1] == pytest.approx(own[1]["tanh()"], rel=1e-6)
    assert second.mean("tanh()", "std") == pytest.approx(own[1]["tanh()"], rel=1e-6)  # over the ranks that have it


def test_shard_norms_combine_into_the_full_parameters_and_replicas_count_once():
    """HSDP-like: 4 ranks, each shard held by 2 replicas; the sums of squares are divided by the replicas."""
    import torch
    from torch import nn

    import bpviz
    from bpviz.engine.distributed import shards

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    with bpviz.watch(model) as w:
        model(torch.randn(5, 4)).sum().backward()
        record = w.step()
    names = ["0.weight", "0.bias"]
    # per rank, squared (grad, weight, update) norms of its shard; NaN: the rank measured none
    gathered = np.array(
        [
            [[1.0, 4.0, np.nan], [0.25, 1.0, np.nan]],
            [[2.0, 4.0, np.nan], [0.25, 1.0, np.nan]],
            [[1.0, 4.0, np.nan], [0.25, 1.0, np.nan]],
            [[2.0, 4.0, np.nan], [0.25, 1.0, np.nan]],
        ]
    )
    shards.combine(record, names, [2, 2], gathered, model)
    by_name = {p.name: p for p in record.params}
    assert by_name["0.weight"].grad_norm == pytest.approx(math.sqrt(6.0 / 2))
    assert by_name["0.weight"].weight_norm == pytest.approx(math.sqrt(16.0 / 2))
    assert by_name["0.weight"].update_norm is None  # no rank had an update
    assert by_name["0.bias"].grad_norm == pytest.approx(math.sqrt(1.0 / 2))
    layer = record.layer("0")
    assert layer.param_grad_norm == pytest.approx(math.sqrt(3.0 + 0.5))
    assert layer.weight_norm == pytest.approx(math.sqrt(8.0 + 2.0))
    assert by_name["2.weight"].grad_norm == pytest.approx(float(model[2].weight.grad.norm()), rel=1e-6)  # untouched
