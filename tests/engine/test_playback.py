"""A recording viewed at a step: the window's RunView equals what the live run had at that step, in bounded memory."""

from __future__ import annotations

import bpviz
from bpviz.engine.runs.playback import Playback
from tests.engine.run_files import assert_same, seeded_run


def test_the_view_at_a_step_holds_that_steps_record_losses_and_findings(tmp_path):
    live, w = seeded_run(tmp_path / "a.bpviz", steps=12)
    playback = Playback(bpviz.open_run(tmp_path / "a.bpviz"), window=4)
    assert playback.steps == list(range(12))
    view = playback.view_at(6)
    assert [r.step for r in view.history.records] == [3, 4, 5, 6]  # the window ends at the chosen step
    assert_same(live[6], view.history.latest)
    assert view.history.loss_steps == list(range(7))  # every loss up to then, none after
    assert view.history.losses == [r.loss for r in live[:7]]
    assert view.findings == playback.run.findings_at(6)
    latest = playback.view_at(None)
    assert_same(live[-1], latest.history.latest)
    assert [f.key for f in latest.findings] == [f.key for f in w.findings]


def test_a_long_run_keeps_only_its_window_and_buckets_the_loss_before_it(tmp_path):
    live, _ = seeded_run(tmp_path / "a.bpviz", steps=30)
    playback = Playback(bpviz.open_run(tmp_path / "a.bpviz"), window=5, max_points=10)
    view = playback.view_at(29)
    assert len(view.history.records) == 5 and len(playback._records) == 5
    coarse = view.history.loss_steps[:-5]
    assert len(coarse) <= 10 and coarse[0] == 0 and coarse[-1] < 25  # buckets before the window
    assert view.history.loss_steps[-5:] == [25, 26, 27, 28, 29]
    assert view.history.losses[-5:] == [r.loss for r in live[25:]]


def test_refresh_takes_in_steps_written_since(tmp_path):
    path = tmp_path / "a.bpviz"
    seeded_run(path, steps=3)
    playback = Playback(bpviz.open_run(path))
    assert playback.last == 2 and playback.refresh() == []
    assert playback.nearest(10) == 2 and playback.nearest(-5) == 0


def test_extending_a_view_with_new_steps_gives_the_view_at_the_latest(tmp_path):
    live, _ = seeded_run(tmp_path / "a.bpviz", steps=8)
    playback = Playback(bpviz.open_run(tmp_path / "a.bpviz"), window=5)
    view = playback.view_at(4)
    playback.extend(view, [5, 6, 7])
    fresh = playback.view_at(7)
    assert [r.step for r in view.history.records] == [r.step for r in fresh.history.records] == [3, 4, 5, 6, 7]
    assert view.history.losses == fresh.history.losses == [r.loss for r in live]
    assert [f.key for f in view.findings] == [f.key for f in fresh.findings]
