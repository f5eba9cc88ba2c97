"""Rewind: back to an earlier step from snapshots, replayed bit for bit, and trained on from there."""

from __future__ import annotations

import dataclasses
import random
import sqlite3
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from bpviz.cli import main
from bpviz.engine.load.experiment import load_experiment
from bpviz.engine.runs.compare import compare_files
from bpviz.engine.runs.errors import RunFileError
from bpviz.engine.runs.reader import open_run
from bpviz.engine.session.remedies import reinit_dead_units
from bpviz.engine.session.snapshots import DataPosition, RngState, Snapshot, SnapshotStore, default_limit
from bpviz.engine.session.stepper import Stepper
from bpviz.engine.user_error import UserCodeError

DYING = Path(__file__).resolve().parents[2] / "sample_models" / "dying_relu.py"

# Dropout draws from the global RNG every step, and the DataLoader reshuffles every epoch from it: a rewind that
# did not restore both would see other masks and other batches.
EXPERIMENT = """
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

def build():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(40, 4, generator=g), torch.randint(0, 3, (40,), generator=g)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))
    loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True)
    return {"model": model, "train_data": loader, "optimizer": torch.optim.Adam(model.parameters(), lr=0.01)}
"""


def stepper(tmp_path, name="exp.py", **kwargs) -> Stepper:
    path = tmp_path / name
    path.write_text(textwrap.dedent(EXPERIMENT))
    return Stepper(load_experiment(path), level="full", **kwargs)


def statistics(record) -> dict:
    """Every field of a record but bpviz's own timings, which no two runs share."""
    values = dataclasses.asdict(record)
    for timing in ("step_s", "overhead_s"):
        values.pop(timing, None)
    return values


def same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b, equal_nan=True)
    if isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
        return True
    return a == b


def test_rewind_then_step_on_repeats_every_statistic_bit_for_bit(tmp_path):
    run = stepper(tmp_path, snapshots=SnapshotStore(every=3))  # snapshots at 0, 3, 6, 9: rewinding to 3 replays it
    first = [run.step() for _ in range(10)]  # 5 batches an epoch: steps 5..9 are a reshuffled second epoch
    weights = [p.detach().clone() for p in run.experiment.model.parameters()]
    back = run.rewind(3)
    assert back.step == 3 and run.step_index == 4 and run.branch == 2
    assert same(statistics(back), statistics(first[3]))
    assert [r.step for r in run.history.records] == [0, 1, 2, 3]
    again = [run.step() for _ in range(6)]
    assert [r.step for r in again] == [4, 5, 6, 7, 8, 9]
    for old, new in zip(first[4:], again):
        assert new.loss == old.loss
        assert same(statistics(new), statistics(old))
    for old, new in zip(weights, run.experiment.model.parameters()):
        assert torch.equal(old, new)
    run.close()


def rng_states() -> tuple:
    return torch.get_rng_state(), np.random.get_state()[1], random.getstate()


def test_the_rng_and_the_data_position_are_restored(tmp_path):
    run = stepper(tmp_path)  # every 10: rewinding to 6 restores the start and replays 7 steps, over an epoch end
    for _ in range(9):
        run.step()
    run.rewind(6)
    restored = rng_states()
    batch = run._next_batch()
    fresh = stepper(tmp_path, name="again.py")
    for _ in range(7):
        fresh.step()
    expected = rng_states()
    assert torch.equal(restored[0], expected[0])
    assert np.array_equal(restored[1], expected[1]) and restored[2] == expected[2]
    expected_batch = fresh._next_batch()  # the 3rd batch of the second (reshuffled) epoch
    assert torch.equal(batch[0], expected_batch[0]) and torch.equal(batch[1], expected_batch[1])
    assert run._position == dataclasses.replace(fresh._position, epoch_rng=run._position.epoch_rng)
    assert run._position.epoch == 1 and run._position.read == 3
    run.close()
    fresh.close()


def test_a_change_after_the_rewind_changes_the_step_after_it(tmp_path):
    run = stepper(tmp_path)
    first = [run.step() for _ in range(6)]
    run.rewind(3)
    run.remedy_event("set_hyperparameter", ("lr", 0.5))
    assert run.hyperparameters()["lr"] == 0.5
    changed = run.step()
    assert changed.step == 4 and changed.loss == first[4].loss  # the loss of step 4 is computed before its update
    assert changed.layers[0].update_ratio != first[4].layers[0].update_ratio
    run.rewind(2)  # a remedy made after step 2 is undone with the state it changed
    assert run.hyperparameters()["lr"] == 0.01 and run.branch == 3 and run.branches[3] == (1, 3)
    run.close()


def test_rewind_refuses_a_step_not_trained(tmp_path):
    run = stepper(tmp_path)
    run.step()
    with pytest.raises(ValueError, match="steps 0 to 0"):
        run.rewind(1)
    run.close()


def test_snapshots_stay_bounded_over_a_thousand_steps():
    store = SnapshotStore(every=10, limit=8, recent=4)
    rng = RngState.capture(None)
    for boundary in range(0, 1001, 10):
        store.add(Snapshot(1, boundary, boundary == 0, False, [], [], {}, rng, DataPosition(0, 0, None)))
    kept = sorted(s.boundary for s in store.snapshots)
    assert len(kept) == 1 + 8  # the pinned start and the limit
    assert kept[0] == 0 and kept[-4:] == [970, 980, 990, 1000]  # the newest are dense
    gaps = np.diff(kept[1:])
    assert gaps[0] >= gaps[-1]  # older ones thinned


def recorded_rewind(tmp_path, lr: float | None = None):
    """Ten steps recorded, a rewind to step 3, then steps 4..9 again (with the learning rate `lr` when given)."""
    run = stepper(tmp_path, record=tmp_path / "run.bpviz", snapshots=SnapshotStore(every=3))
    first = [run.step() for _ in range(10)]
    run.rewind(3)
    if lr is not None:
        run.remedy_event("set_hyperparameter", ("lr", lr))
    again = [run.step() for _ in range(6)]
    run.close()
    return tmp_path / "run.bpviz", first, again


def test_the_run_file_keeps_both_branches(tmp_path):
    path, first, again = recorded_rewind(tmp_path)
    with open_run(path) as main:
        assert [(b.id, b.parent, b.fork_step) for b in main.branches()] == [(1, None, None), (2, 1, 3)]
        assert len(main) == 10 and main.steps().tolist() == list(range(10))
        assert same(statistics(main.record(7)), statistics(first[7]))
    with open_run(path, branch=2) as branch:
        assert branch.branch == 2 and len(branch) == 10 and branch.steps().tolist() == list(range(10))
        for step in range(10):
            expected = first[step] if step <= 3 else again[step - 4]
            assert same(statistics(branch.record(step)), statistics(expected))
        assert branch.loss_series()[0].tolist() == list(range(10))
    with pytest.raises(RunFileError, match="no branch 3"):
        open_run(path, branch=3)


def findings_now(run: Stepper) -> list[dict]:
    return sorted((f.to_dict() for f in run.findings), key=lambda f: (f["kind"], f["layer"] or ""))


def findings_in(path, branch: int, step: int) -> list[dict]:
    with open_run(path, branch=branch) as recorded:
        return sorted((f.to_dict() for f in recorded.findings_at(step)), key=lambda f: (f["kind"], f["layer"] or ""))


def test_a_branch_reads_its_own_findings_at_every_step(tmp_path):
    """relu2 of the dying sample is dead from step 2; a rewind to step 5 and a re-initialisation of its dead units
    change its finding on the new branch, while the old branch keeps finding it dead. Each branch's file, read at
    each of its steps, says what the trainer's findings said right after that step."""
    run = Stepper(load_experiment(DYING), record=tmp_path / "run.bpviz", level="full", snapshots=SnapshotStore(every=5))
    first = []
    for _ in range(12):
        run.step()
        first.append(findings_now(run))
    run.rewind(5)
    run.apply(reinit_dead_units(run, "relu2"))
    again = {}
    for step in range(6, 12):
        assert run.step().step == step
        again[step] = findings_now(run)
    run.close()
    assert [f["kind"] for f in first[3]] == ["dead_relu"] and first[11] != again[11]  # the branches part
    for step in range(12):
        assert findings_in(tmp_path / "run.bpviz", 1, step) == first[step], step
        assert findings_in(tmp_path / "run.bpviz", 2, step) == (first[step] if step <= 5 else again[step]), step


def test_compare_finds_no_divergence_between_a_rewind_without_change_and_its_parent(tmp_path):
    path, _, _ = recorded_rewind(tmp_path)
    result = compare_files(path)
    assert result["divergence"] is None and result["same"], result
    assert result["b"].endswith("(branch 2)")


def test_compare_reports_the_changed_learning_rate_at_the_first_step_after_the_rewind(tmp_path):
    path, first, again = recorded_rewind(tmp_path, lr=0.5)
    result = compare_files(path, branch=[1, 2])
    divergence = result["divergence"]
    assert divergence["step"] == 4 and divergence["statistic"] == "update_ratio", divergence
    layer = divergence["layer"]
    assert (
        divergence["a"] == first[4].layer(layer).update_ratio and divergence["b"] == again[0].layer(layer).update_ratio
    )
    with open_run(path, branch=2) as branch:
        assert branch.interventions == [(4, "lr 0.01 -> 0.5")]
    with open_run(path) as main:
        assert main.interventions == []


def test_the_compare_command_compares_the_branches_of_one_file(tmp_path, capsys):
    path, _, _ = recorded_rewind(tmp_path, lr=0.5)
    assert main(["compare", str(path)]) == 1
    out = capsys.readouterr().out
    assert "diverge at step 4" in out and "(branch 2)" in out
    assert main(["compare", str(path), "--branch", "1", "--branch", "1"]) == 0
    single = tmp_path / "single"
    single.mkdir()
    run = stepper(single, record=single / "one.bpviz")
    run.step()
    run.close()
    assert main(["compare", str(single / "one.bpviz")]) == 2
    assert "it has one branch" in capsys.readouterr().err


def test_a_file_from_before_branches_opens_as_one_branch(tmp_path):
    run = stepper(tmp_path, record=tmp_path / "old.bpviz")
    first = [run.step() for _ in range(3)]
    run.close()
    with sqlite3.connect(tmp_path / "old.bpviz") as conn:  # as format 1 wrote it: no branches table
        conn.execute("DROP TABLE branches")
        conn.execute("PRAGMA user_version = 1")
    with open_run(tmp_path / "old.bpviz") as old:
        assert [(b.id, b.parent) for b in old.branches()] == [(1, None)]
        assert same(statistics(old.record(2)), statistics(first[2]))


FLAKY_ON_CALL_7 = """
import torch
from torch import nn

class Flaky(nn.Module):
    calls = 0
    def forward(self, x):
        Flaky.calls += 1
        if Flaky.calls == 7:
            raise RuntimeError("flaky on its seventh call")
        return x

def build():
    Flaky.calls = 0
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), Flaky(), nn.ReLU(), nn.Linear(8, 3))
    return {"model": model, "train_data": [(torch.randn(8, 4, generator=g), torch.randint(0, 3, (8,), generator=g))]}
"""


def test_a_replayed_step_that_fails_leaves_the_run_on_a_branch_at_the_step_before(tmp_path):
    path = tmp_path / "flaky.py"
    path.write_text(textwrap.dedent(FLAKY_ON_CALL_7))
    run = Stepper(load_experiment(path), record=tmp_path / "flaky.bpviz", snapshots=SnapshotStore(every=2))
    for _ in range(6):  # calls 1..6
        run.step()
    with pytest.raises(UserCodeError, match="the forward pass failed at step 4"):
        run.rewind(4)  # snapshot at 4, then step 4 replayed: call 7 fails
    assert run.step_index == 4 and run.branch == 2 and run.branches[2] == (1, 4)
    assert run.history.latest.step == 3
    assert run.step().step == 4  # call 8: the run goes on, on branch 2
    run.close()
    with open_run(tmp_path / "flaky.bpviz", branch=2) as branch:
        assert branch.steps().tolist() == [0, 1, 2, 3, 4]
        assert [(b.id, b.parent, b.fork_step) for b in branch.branches()] == [(1, None, None), (2, 1, 3)]


def test_the_default_number_of_snapshots_follows_the_model_size():
    assert default_limit(10 * 2**20) == 32  # 51 fit in 512 MiB: capped
    assert default_limit(64 * 2**20) == 8
    assert default_limit(2**30) == 2  # not one fits: still two, so a rewind can land near the present


def test_plain_sql_through_a_branch_sees_that_branch_with_its_own_step_numbers(tmp_path):
    path, first, again = recorded_rewind(tmp_path, lr=0.5)
    with open_run(path, branch=2) as branch:
        rows = branch._conn.execute("SELECT step, loss FROM steps ORDER BY step").fetchall()
        assert rows == [(r.step, r.loss) for r in first[:4] + again]
        layer = first[0].layers[0].name
        sql = "SELECT step, update_ratio FROM layer_stats WHERE layer = ? ORDER BY step"
        ratios = branch._conn.execute(sql, (layer,)).fetchall()
        assert ratios == [(r.step, r.layer(layer).update_ratio) for r in first[:4] + again]
    with sqlite3.connect(path) as conn:  # the file itself: branch 2 under its keys, branch 1 as it always was
        keys = [row[0] for row in conn.execute("SELECT step FROM steps ORDER BY step")]
        assert keys == list(range(10)) + [2**32 + s for s in range(4, 10)]
