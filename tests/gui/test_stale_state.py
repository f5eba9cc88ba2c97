"""A new model or a Reset clears every view at once, and messages about a state end with that state.

Each check reads what a widget holds (curve data, header text, rows), not
what the window meant to draw: stale data is data still sitting in a widget.
"""

from __future__ import annotations

from bpviz.gui.panels.layer_table import NAME_ROLE
from tests.gui import window_driver as driver
from tests.gui.window_driver import LOAD_MS, SAMPLES, open_file, run_steps


def _empty(item) -> bool:
    """A pyqtgraph curve, scatter or bar item with nothing to draw."""
    if hasattr(item, "xData"):
        return item.xData is None or len(item.xData) == 0
    if hasattr(item, "opts") and "x" in item.opts:
        x = item.opts.get("x")
        return x is None or len(x) == 0
    return len(item.data) == 0


def shows_nothing_of_a_previous_model(window) -> list[str]:
    """Every place that could still show the previous model's data, and what it shows; [] when all are empty."""
    page, tools = window.page, window.docks
    stale = []
    if page.table_model.rowCount():
        stale.append(f"table: {page.table_model.rowCount()} rows")
    if page.table_title.text() != "Layers":
        stale.append(f"table title: {page.table_title.text()}")
    if page.findings_panel.model.rowCount():
        stale.append("findings table")
    hist = page.histogram_view
    for name, item in (("histogram", hist.current_curve), ("previous histogram", hist.previous_curve)):
        if not _empty(item):
            stale.append(name)
    for name, heatmap in (("activation heatmap", hist.activation_map), ("gradient heatmap", hist.gradient_map)):
        if heatmap.image.image is not None:
            stale.append(name)
    flow = page.gradient_flow_view
    flow_items = {
        "gradient bars": flow.bars,
        "NaN bars": flow.nonfinite_bars,
        "zero marks": flow.zero_marks,
        "gradient curve": flow.selected_curve,
    }
    for name, item in flow_items.items():
        if not _empty(item):
            stale.append(name)
    stale += [f"gradient reference {n}" for n, c in flow.references.curves.items() if not _empty(c)]
    if "no steps yet" not in flow.header.text():
        stale.append(f"gradient header: {flow.header.text()}")
    loss = page.loss_view
    if not _empty(loss.curve) or not _empty(loss.validation):
        stale.append("loss curve")
    if "no steps yet" not in loss.summary.text():
        stale.append(f"loss summary: {loss.summary.text()}")
    dead = page.dead_units_view
    if not _empty(dead.selected_curve):
        stale.append("dead-unit curve")
    stale += [f"dead reference {n}" for n, c in dead.references.curves.items() if not _empty(c)]
    if dead.activity_image.image is not None and dead.activity_stack.currentWidget() is dead.activity_widget:
        stale.append("unit activity map")
    if tools.network.values:
        stale.append(f"network colours: {tools.network.values}")
    if tools.workbench.layer is not None or tools.workbench.layer_box.count():
        stale.append("workbench layer")
    if tools.workbench.units:
        stale.append("workbench units")
    if tools.step_panel.event is not None:
        stale.append("step panel")
    plots = {
        "histogram": hist.histogram_plot,
        "gradient flow": flow.flow,
        "gradient over time": flow.time,
        "loss": loss.plot,
        "dead units": dead.count_plot,
    }
    for name, plot in plots.items():  # an empty plot keeps no scale of the previous model's data
        (x0, x1), (y0, y1) = plot.getViewBox().viewRange()
        if max(abs(x0), abs(x1 - 1), abs(y0), abs(y1 - 1)) > 1e-6:
            stale.append(f"{name} axes: {plot.getViewBox().viewRange()}")
    labels = window.status.labels
    if labels["step"].text() != "Step –" or labels["loss"].text() != "Loss –":
        stale.append(f"status bar: {labels['step'].text()} {labels['loss'].text()}")
    if not window.error_panel.isHidden():
        stale.append("error banner")
    if page.banner.isVisible():
        stale.append("mode banner")
    return stale


def _train_and_look_everywhere(qtbot, window, steps: int) -> None:
    """Steps, a selected layer, and both tabs drawn once: every view holds data."""
    run_steps(qtbot, window, steps)
    page = window.page
    page.select_layer(page.table_model.names()[1])
    for tab in range(page.tabs.count()):
        page.tabs.setCurrentIndex(tab)
    window.redraw(force=True)
    page.tabs.setCurrentIndex(0)
    assert shows_nothing_of_a_previous_model(window), "the views should hold data before the reset"


def test_reset_clears_every_view_before_the_first_new_step(qtbot, window):
    open_file(qtbot, window, SAMPLES["dying_relu"])
    _train_and_look_everywhere(qtbot, window, 4)
    with qtbot.waitSignal(window.loaded, timeout=LOAD_MS):
        window.actions_.reset.trigger()
    assert shows_nothing_of_a_previous_model(window) == []
    run_steps(qtbot, window, 1)  # and the views fill again from the new run
    page = window.page
    if page.tabs.indexOf(page.loss_view) >= 0:  # on a small screen the loss is a tab, drawn once shown
        page.tabs.setCurrentWidget(page.loss_view)
        window.redraw(force=True)
    assert page.table_model.rowCount() > 0 and not _empty(page.loss_view.curve)


def test_opening_another_file_clears_every_view(qtbot, window):
    open_file(qtbot, window, SAMPLES["dying_relu"])
    _train_and_look_everywhere(qtbot, window, 3)
    open_file(qtbot, window, SAMPLES["forgot_eval"])
    assert window.windowTitle().startswith("forgot_eval.py")
    assert shows_nothing_of_a_previous_model(window) == []


def test_the_error_banner_goes_once_the_step_succeeds(qtbot, window, tmp_path):
    path = tmp_path / "flaky.py"
    path.write_text(
        "import torch\nfrom torch import nn\n\n"
        "class Flaky(nn.Module):\n"
        "    calls = 0\n"
        "    def forward(self, x):\n"
        "        Flaky.calls += 1\n"
        "        if Flaky.calls == 3:\n"
        "            raise ValueError('only the third call fails')\n"
        "        return x\n\n"
        "def build():\n"
        "    Flaky.calls = 0\n"
        "    model = nn.Sequential(nn.Linear(4, 3), Flaky())\n"
        "    data = [(torch.randn(8, 4), torch.randint(3, (8,)))]\n"
        "    return {'model': model, 'train_data': data}\n"
    )
    open_file(qtbot, window, path)
    run_steps(qtbot, window, 2)
    with qtbot.waitSignal(window.failed, timeout=LOAD_MS):
        window.actions_.step.trigger()
    qtbot.waitUntil(lambda: not window.controller.busy, timeout=LOAD_MS)
    assert not window.error_panel.isHidden() and "step 2" in window.error_panel.title.text()
    with qtbot.waitSignal(window.stepped, timeout=LOAD_MS) as stepped:  # the retry of step 2 goes through
        window.actions_.step.trigger()
    assert stepped.args == [2]
    assert window.error_panel.isHidden()


def test_a_pause_message_ends_with_the_paused_step(qtbot, window):
    open_file(qtbot, window, SAMPLES["dying_relu"])
    run_steps(qtbot, window, 1)
    event = driver.step_into(qtbot, window)
    bar = window.statusBar()
    assert bar.currentMessage().startswith(f"Paused in step {event.step}")
    with qtbot.waitSignal(window.stepped, timeout=LOAD_MS):
        window.actions_.step.trigger()  # F10 finishes the paused step
    assert not bar.currentMessage().startswith("Paused")
    run_steps(qtbot, window, 3)
    assert "Paused" not in bar.currentMessage()


def test_a_breakpoint_message_ends_when_training_goes_on(qtbot, window):
    from bpviz.engine.session.breakpoints import Breakpoint

    open_file(qtbot, window, SAMPLES["dying_relu"])
    window.docks.breakpoints.set_breakpoints([Breakpoint(kind="dead_share", threshold=0.5)])
    window.controller.set_breakpoints(window.docks.breakpoints.breakpoints())
    bar = window.statusBar()
    window.run()  # wait on what the window shows
    qtbot.waitUntil(
        lambda: bar.currentMessage().startswith("Stopped at a breakpoint") and not window.controller.running,
        timeout=LOAD_MS,
    )
    window.docks.breakpoints.set_breakpoints([])
    window.controller.set_breakpoints([])
    run_steps(qtbot, window, 3)
    assert not bar.currentMessage().startswith("Stopped at a breakpoint")


def test_every_part_of_one_redraw_shows_the_same_step_while_new_steps_arrive(qtbot, window):
    """A redraw is drawn a part per tick; a step arriving half-way went into the parts drawn after it, so during a
    fast Run the table, the status bar and each plot of one frame showed different steps."""
    import dataclasses

    from bpviz.engine.runs.playback import News

    open_file(qtbot, window, SAMPLES["dying_relu"])
    run_steps(qtbot, window, 2)
    window.redraw(force=True)
    clock, view = window.clock, window.controller.view
    assert (window.controller.between_redraws, window.controller.flush_news) == (clock.between_redraws, clock.flush)
    clock.tick_budget_s = 0.0  # one part per tick, as a redraw too long for one tick is drawn
    clock.mark_dirty()
    clock._next_cycle_at = 0.0
    clock._tick()  # a redraw begins: its first part drawn, the others waiting for their ticks
    assert clock._parts
    latest = view.history.latest
    arrived = News([dataclasses.replace(latest, step=2)], view.history.validation, view.history.interventions, [])
    window.controller.client.stepped.emit(2, arrived)  # step 2 arrives from the run file half-way through
    assert view.history.latest.step == 1  # it waits
    window.controller.client.progress.emit(2, 100)  # a Run's count after each step lets nothing in either
    assert view.history.latest.step == 1
    while clock._parts:
        clock._tick()
    assert clock.shown_step == 1
    assert window.status.labels["step"].text() == "Step 1"  # drawn after the step arrived, but of the same redraw
    assert "step 1" in window.page.histogram_view.header.full_text()  # the plot tab shown drew step 1 too
    assert view.history.latest.step == 2  # in, once that redraw was done, for the next one
    window.redraw()
    assert clock.shown_step == 2 and window.status.labels["step"].text() == "Step 2"
    clock.mark_dirty()
    clock._next_cycle_at = 0.0
    clock._tick()  # another redraw half done, then a step and at once another answer (a run that finished):
    assert clock._parts
    window.controller.client.stepped.emit(3, News([dataclasses.replace(latest, step=3)], [], [], []))
    assert view.history.latest.step == 2
    window.controller.client.run_finished.emit("done")
    assert view.history.latest.step == 3  # the step came first, so it is in before "finished" is told


def test_a_redraw_that_fits_a_tick_is_drawn_in_one_so_no_frame_mixes_two_steps(qtbot, window):
    """Qt paints between ticks: drawn a part per tick, a fast Run's frames showed the status bar at step 976
    over plots of step 885. A redraw within the tick's budget is drawn whole, before Qt can paint."""
    open_file(qtbot, window, SAMPLES["dying_relu"])
    run_steps(qtbot, window, 2)
    window.redraw(force=True)
    clock = window.clock
    clock.tick_budget_s = 60.0  # every part fits
    clock.mark_dirty()
    clock._next_cycle_at = 0.0
    clock._tick()
    assert not clock._parts and clock.shown_step == 1
    assert window.status.labels["step"].text() == "Step 1"
    clock.tick_budget_s = 0.0  # none fits beside another: at least one part each tick all the same
    clock.mark_dirty()
    clock._next_cycle_at = 0.0
    clock._tick()
    assert len(clock._parts) >= 2  # the first part drawn, the rest for later ticks


def test_the_loaded_hint_goes_once_the_user_steps(qtbot, window):
    """ "Press F10 to step" after 20 steps (and in every screenshot) read as if nothing had happened yet."""
    open_file(qtbot, window, SAMPLES["dying_relu"])
    assert "Press F10 to step" in window.statusBar().currentMessage()
    run_steps(qtbot, window, 1)
    assert "Press F10 to step" not in window.statusBar().currentMessage()


def test_steps_per_second_says_when_no_step_has_come_for_a_while(qtbot, window):
    """The rate was drawn with each step only: a step that hung left "130.6 steps/s" up for as long as it hung."""
    import time

    status, label = window.status, window.status.labels["rate"]
    running = [True]
    status._running = lambda: running[0]
    status.forget_arrivals()
    for ago in (0.2, 0.1):
        status._arrivals.append(time.perf_counter() - ago)
    status.refresh_rate()
    assert label.text().endswith(" steps/s") and label.text() != "0.0 steps/s"
    status.forget_arrivals()
    status._arrivals.append(time.perf_counter() - 11.8)  # the last step, 12 s ago (within a tick)
    qtbot.waitUntil(lambda: label.text() == "no step for 12 s", timeout=2000)  # redrawn on its own, no step needed
    running[0] = False
    status.refresh_rate()
    assert label.text() == "– steps/s"


def highlighted(page) -> list[str]:
    """The layers whose rows the table shows selected."""
    return [page.proxy.data(index, NAME_ROLE) for index in page.table.selectionModel().selectedRows()]


def test_a_filter_that_hides_the_selected_layer_keeps_it_and_clearing_it_selects_it_again(qtbot, window):
    open_file(qtbot, window, SAMPLES["dying_relu"])
    assert window.focusWidget() is window.page.table  # the keys go to the table, not into the filter
    run_steps(qtbot, window, 3)
    page = window.page
    assert page.select_layer("relu2")
    page.filter.setText("fc")  # fc1 and fc2 of the five layers
    assert page.table_title.text() == "Layers (2 of 5)"
    assert page.selected_layer() == "relu2"
    assert "relu2" in page.histogram_view.header.text()  # the plots stay on it, not "select a layer"
    run_steps(qtbot, window, 1)  # a redraw while it is hidden neither picks another layer nor clears the filter
    assert page.filter.text() == "fc" and page.selected_layer() == "relu2"
    page.filter.clear()
    assert page.table_title.text() == "Layers (5)"
    assert highlighted(page) == ["relu2"]
    page.filter.setText("fc")
    page.table.selectRow(0)  # choosing a shown layer while filtered follows it
    assert page.selected_layer() == "fc1"
    page.filter.clear()
    assert highlighted(page) == ["fc1"]
