"""A recording viewed at a step: the window's RunView equals what the live run had at that step, in bounded memory."""

from __future__ import annotations

import numpy as np

import bpviz
from bpviz.engine.diagnosis.coverage import checks_run
from bpviz.engine.runs.playback import Playback
from tests.engine.run_files import assert_same, seeded_run


def test_the_view_at_a_step_holds_that_steps_record_losses_and_findings(tmp_path):
    live, w = seeded_run(tmp_path / "a.bpviz", steps=12)
    playback = Playback(bpviz.open_run(tmp_path / "a.bpviz"))
    assert playback.steps == list(range(12))
    view = playback.view_at(6)
    assert [r.step for r in view.history.records] == [6]  # one record decoded: the step chosen
    assert_same(live[6], view.history.latest)
    assert view.history.loss_steps == list(range(7))  # every loss up to then, none after
    assert view.history.losses == [r.loss for r in live[:7]]
    assert view.findings == playback.run.findings_at(6)
    latest = playback.view_at(None)
    assert_same(live[-1], latest.history.latest)
    assert [f.key for f in latest.findings] == [f.key for f in w.findings]


def test_a_views_time_axis_comes_from_the_file_up_to_the_step_shown(tmp_path):
    live, _ = seeded_run(tmp_path / "a.bpviz", steps=30)
    view = Playback(bpviz.open_run(tmp_path / "a.bpviz")).view_at(20)
    found = view.history.layer_steps("2", ("grad_norm",))
    assert [s for s, _ in found] == list(range(21))
    assert [layer.grad_norm for _, layer in found] == [r.layer("2").grad_norm for r in live[:21]]
    rows = view.history.layer_steps("1", ("unit_activity",), last=5)
    assert [s for s, _ in rows] == [16, 17, 18, 19, 20]
    for step, layer in rows:
        assert np.array_equal(layer.unit_activity, live[step].layer("1").unit_activity)
    assert view.history.layer_steps("no such layer") == []


def test_a_long_run_buckets_its_loss_and_time_axes_to_max_points(tmp_path):
    live, _ = seeded_run(tmp_path / "a.bpviz", steps=30)
    view = Playback(bpviz.open_run(tmp_path / "a.bpviz"), max_points=10, max_rows=10).view_at(29)
    history = view.history
    assert len(history.records) == 1
    assert history.loss_steps == [0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 29]  # buckets of 3 steps, then the one shown
    assert np.allclose(
        history.losses[:-1], [np.mean([r.loss for r in live[i : min(i + 3, 29)]]) for i in range(0, 29, 3)]
    )
    assert history.losses[-1] == live[29].loss
    found = history.layer_steps("2", ("grad_norm",))
    assert [s for s, _ in found] == list(range(0, 30, 4))  # buckets of 4: the power of two that fits 10
    expected = [np.mean([r.layer("2").grad_norm for r in live[i : i + 4]]) for i in range(0, 30, 4)]
    assert np.allclose([layer.grad_norm for _, layer in found], expected)
    earlier = Playback(view.history.run, max_points=10).view_at(13).history.layer_steps("2", ("grad_norm",))
    assert [s for s, _ in earlier] == [0, 2, 4, 6, 8, 10, 12]  # 14 steps: buckets of 2, the last cut at 13
    expected = [np.mean([r.layer("2").grad_norm for r in live[i : min(i + 2, 14)]]) for i in range(0, 14, 2)]
    assert np.allclose([layer.grad_norm for _, layer in earlier], expected)
    again = history.layer_steps("2", ("grad_norm",))  # read again from what the reader kept: the same
    assert [(s, layer.grad_norm) for s, layer in again] == [(s, layer.grad_norm) for s, layer in found]
    histograms = history.layer_steps("1", ("histogram",))
    assert [s for s, _ in histograms] == list(range(0, 30, 4))  # every 4th: the power of two that fits 10 rows
    for step, layer in histograms:
        assert_same(live[step].layer("1").histogram, layer.histogram)


def test_refresh_takes_in_steps_written_since(tmp_path):
    path = tmp_path / "a.bpviz"
    seeded_run(path, steps=3)
    playback = Playback(bpviz.open_run(path))
    assert playback.last == 2 and playback.refresh() == []
    assert playback.nearest(10) == 2 and playback.nearest(-5) == 0


def test_extending_a_view_with_new_steps_gives_the_view_at_the_latest(tmp_path):
    live, _ = seeded_run(tmp_path / "a.bpviz", steps=8)
    playback = Playback(bpviz.open_run(tmp_path / "a.bpviz"))
    view = playback.view_at(4)
    playback.extend(view, [5, 6, 7])
    fresh = playback.view_at(7)
    assert [r.step for r in view.history.records] == [r.step for r in fresh.history.records] == [7]
    assert view.history.losses == fresh.history.losses == [r.loss for r in live]
    assert [f.key for f in view.findings] == [f.key for f in fresh.findings]


def test_a_views_checks_cover_the_run_up_to_the_step_shown(tmp_path):
    """The view holds one record; what the checks covered is the run's steps up to it, read from the file (an
    opened recording said "No problems found in 1 step" and "dead ReLU units from step 61" of a 60-step run)."""
    seeded_run(tmp_path / "a.bpviz", steps=12)
    playback = Playback(bpviz.open_run(tmp_path / "a.bpviz"))
    history = playback.view_at(6).history
    assert history.span() == (0, 7)
    checks = {c.kind: c for c in checks_run(history, playback.run.config)}
    assert checks["nan_or_inf"].steps == "steps 0–6" and checks["dead_relu"].steps == "steps 0–6"
    assert playback.view_at(None).history.span() == (0, 12)
