"""The window views recordings: open one read-only, scrub it back in time, follow one another process writes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QRect, Qt

import bpviz
from bpviz.gui.panels.layer_table import COLUMNS, CSV_ROLE
from bpviz.gui.plots.histogram_view import HELD
from tests.engine.run_files import seeded_run
from tests.gui.window_driver import LOAD_MS, SAMPLES, open_file, run_steps

STEPS = 10
MEAN = next(i for i, c in enumerate(COLUMNS) if c.title == "Mean")
GRAD = next(i for i, c in enumerate(COLUMNS) if c.title == "Grad norm")
ROOT = Path(__file__).resolve().parents[2]
LAPTOP = QRect(0, 0, 1280, 800)  # the screen area of a laptop: the compact layout, plots in tabs


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("runs") / "mlp.bpviz"
    seeded_run(path, steps=STEPS, level="full")  # every statistic at every step, histograms included
    return path


def bring_forward(window, view) -> None:
    """On a small screen some plots are tabs, drawn once shown: show `view`'s tab and draw it."""
    if window.page.tabs.indexOf(view) >= 0:
        window.page.tabs.setCurrentWidget(view)
        window.redraw(force=True)


def loss_curve(window, curve=None):
    """(steps, losses) of the loss view's curve (or of `curve` on it), its tab brought forward."""
    bring_forward(window, window.page.loss_view)
    return (curve or window.page.loss_view.curve).getData()


def table_values(window, column: int) -> dict[str, float]:
    model = window.page.table_model
    return {name: model.data(model.index(row, column), CSV_ROLE) for row, name in enumerate(model.names())}


def test_a_recording_opens_read_only_and_every_view_shows_its_last_step(qtbot, window, recording):
    assert window.open_path(recording)
    qtbot.waitUntil(lambda: window.shown_step == STEPS - 1)
    assert "recording" in window.windowTitle() and "read-only" in window.windowTitle()
    a = window.actions_
    assert not any(x.isEnabled() for x in (a.step, a.run, a.run_n, a.step_into, a.validate, a.reset))
    assert window.timeline.isVisible() and window.timeline.step == STEPS - 1
    assert window.status.run_state.text() == "writer stopped (run finished)"
    run = bpviz.open_run(recording)
    last = run.record(STEPS - 1)
    assert table_values(window, MEAN) == {layer.name: layer.mean for layer in last.layers}
    assert list(loss_curve(window)[0]) == list(range(STEPS))
    assert [f.key for f in window.page.findings_panel.model.findings] == [f.key for f in run.findings]
    assert window.docks.network.names == [node.name for node in run.graph.nodes]


def test_scrubbing_shows_the_run_as_it_stood_at_that_step(qtbot, window, recording):
    assert window.open_path(recording)
    qtbot.waitUntil(lambda: window.shown_step == STEPS - 1)
    run = bpviz.open_run(recording)
    window.timeline.go_to(4)
    qtbot.waitUntil(lambda: window.shown_step == 4)
    then = run.record(4)
    assert window.timeline.label.text().startswith("Step 4")
    assert table_values(window, MEAN) == {layer.name: layer.mean for layer in then.layers}
    assert table_values(window, GRAD) == {layer.name: layer.grad_norm for layer in then.layers}
    layer = window.page.selected_layer()
    x, counts = window.page.histogram_view.current_curve.getData()
    assert np.array_equal(counts, then.layer(layer).histogram.counts)
    steps, losses = loss_curve(window)
    assert list(steps) == [0, 1, 2, 3, 4] and losses[-1] == pytest.approx(then.loss)
    assert [f.key for f in window.page.findings_panel.model.findings] == [f.key for f in run.findings_at(4)]

    qtbot.keyClick(window, Qt.Key.Key_Comma)  # one step back
    qtbot.waitUntil(lambda: window.shown_step == 3)
    qtbot.keyClick(window, Qt.Key.Key_Period)
    qtbot.keyClick(window, Qt.Key.Key_Period)
    qtbot.waitUntil(lambda: window.shown_step == 5)
    assert not window.timeline.live
    qtbot.keyClick(window, Qt.Key.Key_End)  # Live: back to the end
    qtbot.waitUntil(lambda: window.shown_step == STEPS - 1)
    assert window.timeline.live and window.timeline.live_button.isChecked()


def test_the_keys_scrub_as_soon_as_a_recording_opens_not_type_into_the_layer_filter(qtbot, window, recording):
    assert window.open_path(recording)
    qtbot.waitUntil(lambda: window.shown_step == STEPS - 1)
    focused = window.focusWidget()  # where a user's keys go once the window is active
    assert focused is window.timeline.slider
    for key in (Qt.Key.Key_Left, Qt.Key.Key_Left, Qt.Key.Key_Comma):
        qtbot.keyClick(focused, key)
    qtbot.waitUntil(lambda: window.shown_step == STEPS - 4)
    qtbot.keyClick(focused, Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: window.shown_step == STEPS - 3)
    assert window.page.filter.text() == ""

    window.page.filter.setFocus()  # a user types in the filter, then Escape: the keys scrub again
    qtbot.keyClicks(window.focusWidget(), "relu")
    qtbot.keyClick(window.focusWidget(), Qt.Key.Key_Escape)
    assert window.focusWidget() is window.page.table and window.page.filter.text() == "relu"
    qtbot.keyClick(window.focusWidget(), Qt.Key.Key_Left)
    qtbot.keyClick(window.focusWidget(), Qt.Key.Key_Comma)
    qtbot.waitUntil(lambda: window.shown_step == STEPS - 5)
    qtbot.keyClick(window.focusWidget(), Qt.Key.Key_Home)  # in the layer table: the first step, not its first row
    qtbot.waitUntil(lambda: window.shown_step == 0)


def test_a_step_without_histograms_shows_the_latest_taken_and_says_which(qtbot, window, tmp_path):
    """Economy recordings have a histogram every tenth step: the other nine show the latest one, named."""
    path = tmp_path / "economy.bpviz"
    seeded_run(path, steps=3, level="economy")  # step 0 is detailed, 1 and 2 are not
    assert window.open_path(path)
    qtbot.waitUntil(lambda: window.shown_step == 2)
    view = window.page.histogram_view
    bring_forward(window, view)
    layer = window.page.selected_layer()
    taken = bpviz.open_run(path).record(0).layer(layer).histogram
    assert list(view.current_curve.getData()[1]) == list(taken.counts)
    assert HELD.format(step=0) in view.outside_label.toPlainText()
    window.timeline.go_to(0)
    qtbot.waitUntil(lambda: window.shown_step == 0)
    assert list(view.current_curve.getData()[1]) == list(taken.counts)
    assert "latest taken" not in view.outside_label.toPlainText()


def test_a_file_that_is_not_a_run_shows_the_error_panel_and_the_window_goes_on(qtbot, window, tmp_path):
    bad = tmp_path / "notes.bpviz"
    bad.write_text("not a database")
    assert not window.open_path(bad)
    assert window.error_panel.isVisible() and "not a bpviz run" in window.error_panel.text()
    assert window.stack.currentWidget() is window.start_page and window.recording is None


def test_recent_runs_on_the_start_page_open_the_recording(qtbot, window, recording):
    assert window.open_path(recording)
    runs = window.start_page.runs
    assert runs.count() == 1 and runs.item(0).text() == "Sequential  ·  10 steps  —  mlp.bpviz"  # model, steps, file
    assert window.start_page.recent.count() == 0  # runs are listed apart from experiment files
    window._close_recording()
    window.stack.setCurrentWidget(window.start_page)
    runs.itemActivated.emit(runs.item(0))
    assert window.recording is not None and window.recording.path == recording.resolve()


WRITER = """
    import sys, torch, bpviz
    import torch.nn.functional as F
    from torch import nn
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with bpviz.watch(model, record=sys.argv[1]) as w:
        for step in range({steps}):
            if step:
                sys.stdin.readline()  # the test says when to take the next step
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(); loss.backward(); opt.step()
            w.step(loss)
            print(step, flush=True)
"""


def test_a_run_written_by_another_process_is_followed_live(qtbot, window, tmp_path):
    path = tmp_path / "live.bpviz"
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(WRITER.format(steps=3)), str(path)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "0"
        qtbot.waitUntil(lambda: len(bpviz.open_run(path)) == 1, timeout=10_000)  # committed by its writer thread
        assert window.open_path(path)
        qtbot.waitUntil(lambda: window.shown_step == 0, timeout=10_000)
        assert window.status.run_state.text() == "● live" and "live recording" in window.windowTitle()
        for step in (1, 2):
            child.stdin.write("go\n")
            child.stdin.flush()
            assert child.stdout.readline().strip() == str(step)
            qtbot.waitUntil(lambda step=step: window.shown_step == step, timeout=10_000)
            assert window.timeline.steps == list(range(step + 1))
            if step == 1:  # the writer waits for the next "go": still live
                window.status.refresh_rate()
                assert window.status.labels["rate"].text() != "– steps/s"  # steps come by themselves: a rate
        assert child.wait(timeout=60) == 0
    finally:
        child.kill()
        child.wait()
    qtbot.waitUntil(lambda: window.status.run_state.text().startswith("writer stopped"), timeout=10_000)
    assert window.recording.state == "finished"
    assert window.history.latest.step == 2
    window.status.refresh_rate()
    assert window.status.labels["rate"].text() == "– steps/s"  # the writer is gone: no step is coming


def test_compare_with_overlays_the_second_run_and_marks_where_they_diverge(qtbot, window, tmp_path):
    a, b = tmp_path / "a.bpviz", tmp_path / "b.bpviz"
    seeded_run(a, steps=STEPS, level="full")
    seeded_run(b, steps=STEPS, lr_from_step5=0.5, level="full")
    assert window.open_path(a)
    result = window.compare_with(b)
    divergence = result["divergence"]["step"]
    assert divergence in (5, 6)  # the learning rate changes at step 5: its update shows at 5, its loss at 6
    qtbot.waitUntil(lambda: window.shown_step == STEPS - 1)
    assert "compared with b.bpviz" in window.windowTitle()
    run_b = bpviz.open_run(b)
    steps_a, losses_a = loss_curve(window)
    steps_b, losses_b = window.comparison.loss.getData()
    assert list(steps_a) == list(steps_b) == list(range(STEPS))
    assert list(losses_b) == list(run_b.loss_series()[1]) and list(losses_a) != list(losses_b)
    page = window.page
    for view, marks in (
        (page.loss_view, page.loss_view.marks),
        (page.gradient_flow_view, page.gradient_flow_view.marks),
        (page.histogram_view, page.histogram_view.activation_map.marks),
    ):
        bring_forward(window, view)
        assert [line.value() for line in marks.lines] == [divergence - 0.5]  # every time axis, before that step
    where = result["divergence"]
    label = f"the runs diverge here ({where['statistic']} of layer {where['layer']})"
    assert window.history.marks == [(divergence, label)]  # the mark says what it is, in words
    assert window.history.interventions == []  # and is no remedy: the workbench compares none
    assert "no remedy was applied" in window.docks.workbench.compare.text()
    last_b = run_b.record(STEPS - 1)
    names = window.page.gradient_flow_view.names
    norms = window.comparison.flow.yData  # the data given; getData() is in the log axis
    assert list(norms) == [last_b.layer(name).grad_norm for name in names]
    layer = window.page.selected_layer()
    assert np.array_equal(window.comparison.histogram.getData()[1], last_b.layer(layer).histogram.counts)

    window.timeline.go_to(divergence - 1)  # before the divergence: no mark yet, and B as it stood then
    qtbot.waitUntil(lambda: window.shown_step == divergence - 1)
    assert list(loss_curve(window, window.comparison.loss)[0]) == list(range(divergence))
    assert window.page.loss_view.marks.lines == []


def test_compare_with_asks_for_a_recorded_run_not_for_a_file_to_open(qtbot, window, tmp_path, monkeypatch):
    """File > Compare With... showed the Open dialog ("opening an experiment runs its code", experiments first)."""
    a, b = tmp_path / "a.bpviz", tmp_path / "b.bpviz"
    seeded_run(a, steps=STEPS)
    seeded_run(b, steps=STEPS, lr_from_step5=0.5)
    asked = []

    def open_run(parent, caption, directory):
        asked.append(caption)
        return b

    monkeypatch.setattr(window.dialogs, "open_run", open_run)
    monkeypatch.setattr(window.dialogs, "open_file", lambda *args: pytest.fail("Compare asked for a file to open"))
    assert window.open_path(a)
    qtbot.waitUntil(lambda: window.shown_step == STEPS - 1)
    window.actions_.compare.trigger()
    assert asked == ["Compare a.bpviz with a recorded run"]
    assert "compared with b.bpviz" in window.windowTitle()


def test_a_shorter_compared_run_is_named_with_the_step_its_overlay_shows(qtbot, window, tmp_path):
    """Past the compared run's end its last step's norms were drawn over the bars with no step named."""
    a, b = tmp_path / "a.bpviz", tmp_path / "b.bpviz"
    seeded_run(a, steps=STEPS, level="full")
    seeded_run(b, steps=6, level="full")
    assert window.open_path(a)
    qtbot.waitUntil(lambda: window.shown_step == STEPS - 1)
    window.compare_with(b)
    qtbot.waitUntil(lambda: settled(window))
    legends = window.comparison.legends
    for name in ("gradient_flow", "activations"):
        bring_forward(window, getattr(window.page, "histogram_view" if name == "activations" else f"{name}_view"))
        assert legends[name].names == ("a.bpviz", "b.bpviz (its step 5)")
    window.timeline.go_to(3)
    qtbot.waitUntil(lambda: window.shown_step == 3 and settled(window))
    assert legends["activations"].names == ("a.bpviz", "b.bpviz")
    bring_forward(window, window.page.gradient_flow_view)
    assert legends["gradient_flow"].names == ("a.bpviz", "b.bpviz")


def test_a_compared_run_without_the_layers_shown_says_so(qtbot, window, tmp_path):
    """A run of another model was named over the plots with nothing drawn for it and nothing said."""
    from bpviz import cli

    a, b = tmp_path / "a.bpviz", tmp_path / "b.bpviz"
    seeded_run(a, steps=STEPS, level="full")  # a Sequential: its layers are named 0-4
    assert cli.main(["check", str(SAMPLES["dying_relu"]), "--steps", str(STEPS), "--record", str(b)]) == 1
    assert window.open_path(a)
    qtbot.waitUntil(lambda: window.shown_step == STEPS - 1)
    window.compare_with(b)
    qtbot.waitUntil(lambda: settled(window))
    legends = window.comparison.legends
    bring_forward(window, window.page.gradient_flow_view)
    assert legends["gradient_flow"].names == ("a.bpviz", "b.bpviz (no layer of these names)")
    bring_forward(window, window.page.histogram_view)
    layer = window.page.selected_layer()
    assert layer is not None and legends["activations"].names == ("a.bpviz", f"b.bpviz (no layer {layer})")


def test_a_recordings_workbench_lists_the_dead_units_of_the_step_shown(qtbot, window, tmp_path):
    """The table stayed empty in every recording: its rows came only from a live experiment process."""
    from tests.engine.models import batch, dead_unit_mlp, train

    path = tmp_path / "dead.bpviz"
    model = dead_unit_mlp(3)  # units 0-2 never fire: their input is their bias, -1
    with bpviz.watch(model, record=path) as w:
        train(model, w, 6, *batch())
    assert window.open_path(path)
    qtbot.waitUntil(lambda: window.shown_step == 5)
    bench = window.docks.workbench
    assert bench.select("1")
    qtbot.waitUntil(lambda: bench.table.rowCount() == 3)
    assert bench.table_title.text() == "Dead units of 1 at step 5: 3"
    assert [(u.unit, u.died_at, u.bias) for u in bench.units] == [(0, 0, -1.0), (1, 0, -1.0), (2, 0, -1.0)]
    assert all(u.preact_max == pytest.approx(-1.0) and u.weight_norm is None for u in bench.units)
    window.timeline.go_to(2)
    qtbot.waitUntil(lambda: bench.units_step == 2)
    assert bench.table_title.text() == "Dead units of 1 at step 2: 3"
    assert "no remedy was applied" in bench.compare.text()


def test_the_window_records_what_it_trains_lists_it_and_saves_a_copy(qtbot, window, runs_in_tmp, tmp_path):
    open_file(qtbot, window, SAMPLES["dying_relu"])
    run_steps(qtbot, window, 3)
    recorded = window.controller.run_path
    assert recorded is not None and recorded.parent == runs_in_tmp
    assert len(bpviz.open_run(recorded)) == 3  # a step the window shows is in the file: it was read from there
    window._refresh_recent()
    assert [
        window.start_page.runs.item(i).data(Qt.ItemDataRole.UserRole) for i in range(window.start_page.runs.count())
    ] == [str(recorded)]
    # named by the experiment it recorded, not by its date alone
    assert window.start_page.runs.item(0).text() == f"dying_relu.py  ·  3 steps  —  {recorded.name}"
    saved = window.save_run(tmp_path / "kept.bpviz")
    kept = bpviz.open_run(saved)
    live = window.history
    assert len(kept) == 3 and kept.record(2).loss == live.latest.loss
    assert [r.step for r in kept.records()] == [r.step for r in live.records]
    assert kept._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert not list(tmp_path.glob(".*.part"))  # written beside, then renamed into place


def test_bpviz_run_file_opens_the_recording_and_a_bad_one_exits_2(recording, tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    shot = tmp_path / "shot.png"
    done = subprocess.run(
        [sys.executable, "-m", "bpviz", str(recording), "--screenshot", str(shot)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = tmp_path / "bad.bpviz"
    bad.write_bytes(b"SQLite format 3\x00" + b"\x00" * 10)
    done = subprocess.run(
        [sys.executable, "-m", "bpviz", str(bad), "--screenshot", str(tmp_path / "bad.png")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2 and not (tmp_path / "bad.png").exists()


def click_tab(qtbot, tabs, view) -> None:
    """Click the tab of `view`, as a person does (no redraw asked for)."""
    bar = tabs.tabBar()
    qtbot.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.tabRect(tabs.indexOf(view)).center())
    assert tabs.currentWidget() is view


def settled(window) -> bool:
    """The redraw clock has drawn everything that arrived (nothing more comes without a scrub)."""
    return not window.clock._dirty and not window.clock._parts


def test_a_plot_tab_shown_after_compare_draws_the_second_run_at_once(qtbot, window, tmp_path):
    """At 1280x800 the gradient flow is a tab: shown after File > Compare With… at a scrubbed step, it once drew
    no overlay until the timeline moved a step."""
    a, b = tmp_path / "a.bpviz", tmp_path / "b.bpviz"
    seeded_run(a, steps=STEPS, level="full")
    seeded_run(b, steps=STEPS, lr_from_step5=0.5, level="full")
    window.reset_layout(LAPTOP)
    assert window.compact_layout and window.open_path(a)
    qtbot.waitUntil(lambda: window.shown_step == STEPS - 1)
    window.timeline.go_to(6)
    qtbot.waitUntil(lambda: window.shown_step == 6)
    window.compare_with(b)
    qtbot.waitUntil(lambda: settled(window))
    page, then_b = window.page, bpviz.open_run(b).record(6)
    click_tab(qtbot, page.tabs, page.gradient_flow_view)
    names = page.gradient_flow_view.names
    assert names == [layer.name for layer in sorted(then_b.layers, key=lambda layer: layer.order)]
    assert list(window.comparison.flow.yData) == [then_b.layer(name).grad_norm for name in names]
    click_tab(qtbot, page.tabs, page.loss_view)
    assert list(window.comparison.loss.getData()[0]) == list(range(7))


def test_every_view_hidden_in_a_tab_shows_the_step_chosen_when_it_is_shown(qtbot, window, recording):
    window.reset_layout(LAPTOP)
    assert window.compact_layout and window.open_path(recording)
    qtbot.waitUntil(lambda: window.shown_step == STEPS - 1)
    page, docks = window.page, window.docks
    assert page.select_layer("1")  # the ReLU: its dead units have a header to read
    docks.step_dock.raise_()  # the Network tab goes behind the Step tab
    window.timeline.go_to(4)
    qtbot.waitUntil(lambda: window.shown_step == 4 and settled(window))
    for view in (page.dead_units_view, page.gradient_flow_view):
        click_tab(qtbot, page.tabs, view)
        assert "step 4" in view.header.text()
    click_tab(qtbot, page.tabs, page.loss_view)
    assert list(page.loss_view.curve.getData()[0]) == list(range(5))
    docks.network_dock.raise_()  # its tab raised: it shows the recording at step 4, not the run last trained
    assert docks.network._history is window.history and window.history.latest.step == 4


def test_compare_names_both_runs_and_holds_the_second_runs_latest_histogram_on_a_plain_step(qtbot, window, tmp_path):
    """Economy runs take histograms every tenth step. On the steps between, the second run's overlay was empty,
    the first run's histogram was read off the heatmap's thinned columns (an older one), and no view said which
    dashed curve was which run."""
    a, b = tmp_path / "a.bpviz", tmp_path / "b.bpviz"
    seeded_run(a, steps=26, level="economy")
    records_b, _ = seeded_run(b, steps=26, lr_from_step5=0.5, level="economy")
    assert window.open_path(a)
    qtbot.waitUntil(lambda: window.shown_step == 25)
    window.recording.playback.max_rows = 1  # a long run's heatmap: one column of the three histograms taken
    window.compare_with(b)
    window.timeline.go_to(24)
    qtbot.waitUntil(lambda: window.shown_step == 24 and settled(window))
    view = window.page.histogram_view
    bring_forward(window, view)
    layer = window.page.selected_layer()
    assert layer is not None and window.history.latest.layer(layer).histogram is None  # a plain step
    taken_a = bpviz.open_run(a).record(20).layer(layer).histogram
    assert list(view.current_curve.getData()[1]) == list(taken_a.counts)
    assert HELD.format(step=20) in view.outside_label.toPlainText()
    assert np.array_equal(window.comparison.histogram.getData()[1], records_b[20].layer(layer).histogram.counts)
    legends = window.comparison.legends
    assert legends["activations"].names == ("a.bpviz", "b.bpviz (histogram of step 20)")
    for name in ("loss", "gradient_flow"):
        bring_forward(window, getattr(window.page, f"{name}_view"))
        assert legends[name].names == ("a.bpviz", "b.bpviz") and legends[name].label.isVisible()
    assert window.open_path(b)  # another recording, compared with nothing: no overlay, no names
    qtbot.waitUntil(lambda: window.shown_step == 25 and settled(window))
    bring_forward(window, view)
    counts = window.comparison.histogram.getData()[1]
    assert counts is None or len(counts) == 0
    assert legends["activations"].names is None and not legends["activations"].label.isVisible()


def test_a_run_the_window_recorded_holds_every_step_alone_once_its_process_is_gone(
    qtbot, window, runs_in_tmp, tmp_path
):
    """The experiment process is killed on Reset and on quit, before its writer folds the write-ahead log back in:
    the .bpviz copied alone lacked the latest steps (1,164 of 1,193 of one run)."""
    import shutil
    import sqlite3

    open_file(qtbot, window, SAMPLES["dying_relu"])
    run_steps(qtbot, window, 5)
    recorded = window.controller.run_path
    ended = window.controller.client.current
    with qtbot.waitSignal(window.loaded, timeout=LOAD_MS):
        window.actions_.reset.trigger()
    qtbot.waitUntil(lambda: not ended.reader.is_alive(), timeout=LOAD_MS)
    assert not Path(f"{recorded}-wal").exists()
    alone = tmp_path / "copied" / recorded.name
    alone.parent.mkdir()
    shutil.copyfile(recorded, alone)  # the file only, as people move files
    assert sqlite3.connect(alone).execute("SELECT count(*) FROM steps").fetchone()[0] == 5
    assert len(bpviz.open_run(alone)) == 5
    assert bpviz.open_run(recorded).status == "finished"  # ended by the window, not cut short by a crash


def test_a_run_the_window_was_training_when_it_quit_reads_as_finished_with_every_step(qtbot, window, runs_in_tmp):
    """Quitting kills the experiment process before its writer marks the run finished: every run the window
    recorded read "writer stopped (run not finished)", blaming a crash or a kill."""
    open_file(qtbot, window, SAMPLES["dying_relu"])
    run_steps(qtbot, window, 3)
    recorded = window.controller.run_path
    window.controller.shutdown()
    run = bpviz.open_run(recorded)
    assert (run.status, len(run)) == ("finished", 3)


def test_save_run_as_suggests_the_runs_own_name_in_a_folder_the_user_has(qtbot, window, recording, monkeypatch):
    """With no folder opened from yet, Save Run As suggested "/run.bpviz": the root of the disk."""
    asked = []
    monkeypatch.setattr(window.dialogs, "save_file", lambda parent, caption, suggested, kinds: asked.append(suggested))
    assert window.open_path(recording)
    qtbot.waitUntil(lambda: window.shown_step == STEPS - 1)
    window.settings.set_last_directory("")
    assert window.save_run_dialog() is None  # the dialog was cancelled
    assert asked == [str(Path.home() / recording.name)]


def test_a_click_on_the_timeline_moves_it_to_the_step_clicked(qtbot):
    """A click near the start of a long run moved it ten steps (a page), not to where the user pointed."""
    from PySide6.QtCore import QPoint

    from bpviz.gui.window.timeline import Timeline

    timeline = Timeline()
    qtbot.addWidget(timeline)
    timeline.resize(800, 40)
    timeline.show()
    qtbot.waitExposed(timeline)
    timeline.set_steps(list(range(100)))
    timeline.go_first()
    groove = timeline.slider.rect()
    at = QPoint(groove.width() * 9 // 10, groove.height() // 2)
    with qtbot.waitSignal(timeline.step_chosen) as chosen:
        qtbot.mouseClick(timeline.slider, Qt.MouseButton.LeftButton, pos=at)
    assert 85 <= chosen.args[0] <= 95 and timeline.step == chosen.args[0]  # near 90% of the way, not step 10
