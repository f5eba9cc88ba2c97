"""rank_divergence judged on hand-made tables (any world size, no processes), and the per-rank file names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bpviz.engine.config import Config
from bpviz.engine.diagnosis import rank_divergence
from bpviz.engine.diagnosis.rule import Context
from bpviz.engine.distributed.context import rank_path
from bpviz.engine.record.dead_units import DeadUnitTracker
from bpviz.engine.record.history import History
from bpviz.engine.record.rank_table import COLUMN, STATS, RankTable
from bpviz.engine.record.records import StepRecord

LAYERS = ["a", "b"]


def _table(stds: list[list[float]], grads: list[list[float]] | None = None) -> RankTable:
    """stds[rank][layer]: output std (mean 0) of each rank's layers; gradient norms 1 unless given."""
    world = len(stds)
    values = np.zeros((world, len(LAYERS), len(STATS)))
    values[:, :, COLUMN["count"]] = 32
    values[:, :, COLUMN["std"]] = stds
    values[:, :, COLUMN["grad_norm"]] = grads if grads is not None else 1.0
    return RankTable(0, world, list(LAYERS), values, np.zeros(world), np.zeros(world, dtype=bool))


def _judge(tables: list[RankTable]) -> list:
    history = History()
    found = []
    for step, table in enumerate(tables):
        record = StepRecord(step=step, loss=None, layers=[], backward_order=LAYERS[::-1], ranks=table)
        history.append(record)
        ctx = Context(step, Config(), history, DeadUnitTracker(3), record)
        found = list(rank_divergence.check(ctx))
    return found


def test_the_odd_one_of_three_ranks_is_named_at_the_first_layer():
    (obs,) = _judge([_table([[1.0, 2.0], [1.1, 2.1], [9.0, 19.0]])])
    assert (obs.rank, obs.layer, obs.severity) == (2, "a", "warning")
    assert "Rank 2's output scale (RMS) at a" in obs.message and "9 against 1.05" in obs.message


def test_batch_noise_is_not_a_divergence():
    assert _judge([_table([[1.0, 2.0], [1.5, 2.6], [0.8, 1.7]], [[1.0, 1.0], [2.0, 2.0], [1.4, 1.2]])]) == []


def test_of_two_ranks_the_one_that_moved_is_named():
    calm = [_table([[1.0, 2.0], [1.05, 2.1]]) for _ in range(3)]
    (obs,) = _judge([*calm, _table([[1.0, 2.0], [20.0, 40.0]])])
    assert (obs.rank, obs.layer) == (1, "a")


def test_two_ranks_apart_from_the_start_are_reported_without_blame():
    (obs,) = _judge([_table([[1.0, 2.0], [20.0, 40.0]])])
    assert (obs.rank, obs.layer) == (None, "a")
    assert "rank 0: 1, rank 1: 20" in obs.message


def test_a_gradient_divergence_is_named_in_backward_order():
    (obs,) = _judge([_table([[1.0, 2.0]] * 3, [[1.0, 1.0], [1.0, 1.2], [30.0, 40.0]])])
    assert (obs.rank, obs.layer) == (2, "b")  # "b" is nearer the loss: the gradient reached it first
    assert "output gradient norm" in obs.message


def test_nan_on_one_rank_is_an_error_at_its_layer():
    table = _table([[1.0, 2.0]] * 3)
    table.values[1, 1, COLUMN["nonfinite"]] = 1.0
    (obs,) = _judge([table])
    assert (obs.rank, obs.layer, obs.severity) == (1, "b", "error")


def test_nan_on_every_rank_is_not_a_divergence():
    table = _table([[1.0, 2.0]] * 2)
    table.values[:, 1, COLUMN["nonfinite"]] = 1.0
    table.values[:, 1, COLUMN["std"]] = np.nan
    assert _judge([table]) == []


def test_pooled_moments_weight_each_rank_by_its_elements():
    table = _table([[1.0, 2.0], [3.0, 2.0]])
    table.values[:, 0, COLUMN["mean"]] = [0.0, 4.0]
    table.values[1, 0, COLUMN["count"]] = 96  # rank 1 has three times rank 0's elements
    values = np.concatenate([np.full(32, 0.0) + [-1, 1] * 16, np.full(96, 4.0) + [-3, 3] * 48])
    assert table.pooled("a") == pytest.approx((values.mean(), values.std()))


@pytest.mark.parametrize(
    ("path", "rank", "world", "expected"),
    [
        ("runs/run.bpviz", 1, 4, "runs/run.rank1.bpviz"),
        ("runs/run.bpviz", 0, 4, "runs/run.rank0.bpviz"),
        ("runs/run.bpviz", 0, 1, "runs/run.bpviz"),
        ("run", 3, 4, "run.rank3"),
        ("a.b/run.v2.bpviz", 2, 3, "a.b/run.v2.rank2.bpviz"),
    ],
)
def test_each_rank_writes_its_own_file(path, rank, world, expected):
    assert rank_path(path, rank, world) == Path(expected)


@pytest.fixture
def one_rank_group():
    """A gloo group of one process, so the exchange itself runs here without spawning."""
    import socket

    import torch.distributed as dist

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_more_layers_than_the_exchange_holds_are_dropped_once_then_fit(one_rank_group):
    from torch import nn

    from bpviz.engine.distributed.exchange import RankExchange
    from bpviz.engine.record.records import LayerStep

    exchange = RankExchange(nn.Linear(2, 2))  # room for 2 * 1 module + 8 layers
    layers = [LayerStep(f"l{i}", "Linear", (4, 2), None, i, mean=float(i), std=1.0) for i in range(15)]
    record = StepRecord(step=0, loss=2.5, layers=layers)
    first = exchange.exchange(record)
    assert first.truncated and first.layers == [f"l{i}" for i in range(15)]
    assert first.of("l9", "mean")[0] == 9.0 and first.of("l10", "count")[0] == 0  # the ten that fit, no more
    second = exchange.exchange(record)
    assert not second.truncated and second.of("l14", "mean")[0] == 14.0
    assert second.losses.tolist() == [2.5]
