"""Run files: every recorded StepRecord read back equal, series and findings for the window, following, compare."""

from __future__ import annotations

import sqlite3

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import bpviz
from bpviz.engine.runs.compare import compare_files
from bpviz.engine.runs.rejudge import check_recording
from tests.engine.models import NanMaker, batch, train
from tests.engine.run_files import assert_same, seeded_run


class Everything(nn.Module):
    """Exercises every kind of field: unit tracking, saturation, BatchNorm and Dropout modes, functional calls."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 12)
        self.bn = nn.BatchNorm1d(12)
        self.drop = nn.Dropout(0.1)
        self.fc2 = nn.Linear(12, 8)
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        x = self.drop(torch.relu(self.bn(self.fc1(x))))
        return self.out(torch.tanh(self.fc2(x)))


def test_every_field_of_every_recorded_step_reads_back_equal(tmp_path):
    torch.manual_seed(0)
    model = Everything()
    x, y = batch(32)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    live = []
    with bpviz.watch(model, record=tmp_path / "run.bpviz", level="full") as w:
        for _ in range(8):
            model.train()
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            live.append(w.step(loss))
        model.eval()
        with torch.no_grad():
            model(x)
        w.record_validation({"loss": 0.5, "accuracy": 0.75})
        live_report, live_findings = w.report(), w.findings
    with bpviz.open_run(tmp_path / "run.bpviz") as run:
        assert len(run) == 8 and run.steps().tolist() == list(range(8))
        for record in live:
            assert_same(record, run.record(record.step))
        assert run.report() == live_report
        assert_same(live_findings, run.findings)
        assert run.validation == [(7, {"loss": 0.5, "accuracy": 0.75})]
        assert run.status == "finished"


def test_nan_and_infinite_values_read_back_as_they_were(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), NanMaker(), nn.Linear(4, 2))
    x, y = batch(8, classes=2)
    with bpviz.watch(model, record=tmp_path / "nan.bpviz") as w:
        live = [w.step(F.cross_entropy(model(x), y))]
    assert live[0].layers[1].nonfinite and np.isnan(live[0].layers[1].mean)
    with bpviz.open_run(tmp_path / "nan.bpviz") as run:
        assert_same(live[0], run.record(0))


def test_a_folder_gets_a_new_dated_file_and_an_existing_file_is_never_overwritten(tmp_path):
    _, first = seeded_run(f"{tmp_path}/runs/", steps=1)  # a folder not made yet: the trailing slash says so
    _, second = seeded_run(tmp_path / "runs", steps=1)
    names = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert names == sorted([first.recorder_path.name, second.recorder_path.name]) and len(set(names)) == 2
    before = first.recorder_path.read_bytes()
    try:
        seeded_run(first.recorder_path, steps=1)
    except bpviz.engine.runs.errors.RunFileError as error:
        assert "never overwritten" in error.summary() and str(first.recorder_path) in error.summary()
    else:
        raise AssertionError("an existing run file was written over")
    assert first.recorder_path.read_bytes() == before


def test_series_and_histograms_are_bucketed_to_max_points(tmp_path):
    live, _ = seeded_run(tmp_path / "run.bpviz", steps=10)
    with bpviz.open_run(tmp_path / "run.bpviz") as run:
        steps, losses = run.loss_series()
        assert steps.tolist() == list(range(10)) and losses.tolist() == [r.loss for r in live]
        steps, means = run.loss_series(max_points=5)
        assert steps.tolist() == [0, 2, 4, 6, 8]
        assert np.allclose(means, [(live[i].loss + live[i + 1].loss) / 2 for i in range(0, 10, 2)])
        steps, norms = run.layer_series("2", "grad_norm", max_points=4, agg="max")
        assert steps.tolist() == [0, 3, 6, 9]
        expected = [max(r.layer("2").grad_norm for r in live[i : i + 3]) for i in (0, 3, 6, 9)]
        assert norms.tolist() == expected
        steps, counts, lo, hi = run.histograms("1", "activation", step_range=(2, 9), max_points=3)
        assert steps.tolist() == [2, 6]  # every 4th: the power of two that keeps 8 steps within 3
        assert np.array_equal(counts, np.vstack([live[s].layer("1").histogram.counts for s in (2, 6)]))
        assert lo.tolist() == [live[s].layer("1").histogram.lo for s in (2, 6)]
        assert hi.tolist() == [live[s].layer("1").histogram.hi for s in (2, 6)]
        assert run.histograms("1", "gradient")[1].shape == (10, 64)
        steps, activity = run.unit_activity_series("1", max_points=5)
        assert steps.tolist() == [0, 2, 4, 6, 8]
        assert np.array_equal(activity, np.vstack([live[s].layer("1").unit_activity for s in (0, 2, 4, 6, 8)]))
        assert run.unit_activity_series("0") is None  # a Linear layer tracks no units


def test_findings_at_a_step_are_the_findings_as_they_stood_then(tmp_path):
    from tests.engine.models import dead_unit_mlp

    model = dead_unit_mlp(6, width=8)
    with bpviz.watch(model, record=tmp_path / "dead.bpviz") as w:
        train(model, w, 5, *batch())
    with bpviz.open_run(tmp_path / "dead.bpviz") as run:
        assert run.findings_at(1) == []  # dead_window 3: not judged dead before step 2
        (dead,) = run.findings_at(2)
        assert (dead.kind, dead.layer, dead.step, dead.severity, dead.last_step) == ("dead_relu", "1", 2, "error", 2)
        assert run.findings_at(4)[0].last_step == 4


def test_a_reader_sees_steps_written_since_it_opened(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    x, y = batch()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with bpviz.watch(model, record=tmp_path / "live.bpviz") as w:
        run = bpviz.open_run(w.recorder_path)
        assert len(run) == 0 and run.status == "live"
        for step in range(3):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            record = w.step(loss)
            w.recorder.writer.flush()
            assert run.new_steps() == [step]
            assert_same(record, run.record(step))
    assert run.new_steps() == [] and run.status == "finished"
    run.close()


def test_checking_a_recording_gives_the_live_report_and_new_thresholds_apply(tmp_path):
    live, w = seeded_run(tmp_path / "run.bpviz", steps=6)
    report = check_recording(tmp_path / "run.bpviz", None)
    assert report == w.report()
    relaxed = check_recording(tmp_path / "run.bpviz", bpviz.Config(dead_window=100))
    assert [f for f in relaxed["findings"] if f["kind"] == "dead_relu"] == []


def test_identical_seeded_runs_do_not_diverge(tmp_path):
    seeded_run(tmp_path / "a.bpviz")
    seeded_run(tmp_path / "b.bpviz")
    result = compare_files(tmp_path / "a.bpviz", tmp_path / "b.bpviz")
    assert result["same"] and result["divergence"] is None


def test_a_learning_rate_changed_from_step_5_diverges_at_step_5(tmp_path):
    live_a, _ = seeded_run(tmp_path / "a.bpviz")
    live_b, _ = seeded_run(tmp_path / "b.bpviz", lr_from_step5=0.5)
    result = compare_files(tmp_path / "a.bpviz", tmp_path / "b.bpviz")
    div = result["divergence"]
    assert not result["same"] and div["step"] == 5
    # the first difference in step 5 is its update: the forward and backward of step 5 ran on equal weights
    assert div["statistic"] == "update_ratio" and div["layer"] == "0"
    assert (div["a"], div["b"]) == (live_a[5].layer("0").update_ratio, live_b[5].layer("0").update_ratio)


def test_plain_sql_reads_the_loss_and_layer_statistics(tmp_path):
    live, _ = seeded_run(tmp_path / "run.bpviz", steps=3)
    conn = sqlite3.connect(tmp_path / "run.bpviz")
    assert conn.execute("select step, loss from steps order by step").fetchall() == [(r.step, r.loss) for r in live]
    rows = conn.execute("select step, grad_norm from layer_stats where layer = '2' order by step").fetchall()
    assert rows == [(r.step, r.layer("2").grad_norm) for r in live]
    assert conn.execute("pragma integrity_check").fetchone() == ("ok",)
