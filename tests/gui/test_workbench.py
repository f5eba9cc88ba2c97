"""The dead-neuron workbench and live hyperparameters: find the dead units, apply a remedy, watch them come back."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QRect, Qt

from tests.gui.window_driver import LOAD_MS, SAMPLES, open_file, run_steps, training_state


@pytest.fixture
def window(window):
    """On a monitor: loss and gradient flow beside the plot tabs (on a small screen they are tabs themselves)."""
    window.reset_layout(QRect(0, 0, 1600, 1000))
    return window


def brightest(widget) -> int:
    """The lightness of the brightest pixel of `widget` as drawn: its text, on these dark buttons."""
    image = widget.grab().toImage()
    return max(image.pixelColor(x, y).lightness() for x in range(image.width()) for y in range(image.height()))


def dead(window, layer: str = "relu2") -> int:
    return window.history.latest.layer(layer).dead_units


def test_reinitialising_dead_units_brings_the_dead_count_down(qtbot, window):
    open_file(qtbot, window, SAMPLES["dying_relu"])
    run_steps(qtbot, window, 6)
    bench = window.docks.workbench
    assert bench.layer == "relu2"  # the layer with the most dead units is picked
    qtbot.waitUntil(lambda: bench.units_step == 5 and bench.table.rowCount() == dead(window), timeout=LOAD_MS)
    before = dead(window)
    assert before > 32
    assert all(u.died_at <= 5 and u.preact_max <= 0 for u in bench.units)
    shown = [int(bench.table.item(row, 0).text()) for row in range(bench.table.rowCount())]
    assert shown == sorted(shown)  # lowest unit first, as the header's arrow says
    assert bench.unit_timeline.image.image.shape == (6, 64)  # steps × units
    assert bench.summary.toolTip().startswith(f"{before} of 64 units dead")  # the count first: the box names the layer
    bench.summary.resize(230, bench.summary.height())  # narrow: at 1280 wide it read "61 of 64 un…", then "relu2 …"
    shown = bench.summary.text()
    assert "…" in shown and f"{before} of 64 units dead" in shown  # the count whole, first

    bench.reinit.click()
    qtbot.waitUntil(lambda: len(window.history.interventions) == 1, timeout=LOAD_MS)
    assert window.history.interventions == [(6, f"relu2: re-initialised {before} dead units")]
    qtbot.waitUntil(lambda: len(window.page.loss_view.marks.lines) == 1, timeout=LOAD_MS)
    assert "re-initialised" in bench.message.text()

    with qtbot.waitSignal(window.run_finished, timeout=LOAD_MS):
        bench.steps.setValue(6)
        bench.go.click()  # Continue from the workbench
    qtbot.waitUntil(lambda: window.shown_step == 11, timeout=LOAD_MS)
    after = [r.layer("relu2").dead_units for r in list(window.history.records)[6:]]
    assert len(after) == 6 and max(after) < before / 4
    assert [line.value() for line in bench.curve_marks.lines] == [5.5]
    assert "→" in bench.compare.text()
    qtbot.waitUntil(lambda: bench.units_step == 11, timeout=LOAD_MS)
    assert bench.table.rowCount() == dead(window)


def test_replace_activation_and_undo_from_the_workbench(qtbot, window):
    open_file(qtbot, window, SAMPLES["dying_relu"])
    run_steps(qtbot, window, 2)
    bench, hyper = window.docks.workbench, window.docks.hyperparams
    assert bench.leaky.isEnabled() and not bench.undo.isEnabled()  # nothing applied: nothing to undo
    window.docks.workbench_dock.show()
    window.docks.workbench_dock.raise_()
    qtbot.waitUntil(bench.undo.isVisible, timeout=LOAD_MS)
    assert brightest(bench.undo) < brightest(bench.leaky) - 40  # and it looks it (the view's colour held for all)
    assert hyper.apply_button.isEnabled() and not hyper.undo_button.isEnabled()
    bench.leaky.click()
    qtbot.waitUntil(lambda: len(window.history.interventions) == 1, timeout=LOAD_MS)
    qtbot.waitUntil(lambda: bench.undo.isEnabled() and hyper.undo_button.isEnabled(), timeout=LOAD_MS)
    run_steps(qtbot, window, 1)
    assert window.history.latest.layer("relu2").type == "LeakyReLU"
    bench.undo.click()
    qtbot.waitUntil(lambda: len(window.history.interventions) == 2, timeout=LOAD_MS)
    run_steps(qtbot, window, 1)
    assert window.history.latest.layer("relu2").type == "ReLU"
    assert [label for _, label in window.history.interventions] == [
        "relu2: ReLU -> LeakyReLU",
        "undo: relu2: ReLU -> LeakyReLU",
    ]
    assert not bench.undo.isEnabled() and not hyper.undo_button.isEnabled()  # the one remedy was taken back


def test_remedies_are_refused_while_a_step_is_paused(qtbot, window):
    open_file(qtbot, window, SAMPLES["dying_relu"])
    run_steps(qtbot, window, 1)
    window.actions_.step_into.trigger()
    qtbot.waitUntil(lambda: window.controller.paused_at is not None, timeout=LOAD_MS)
    bench, hyper = window.docks.workbench, window.docks.hyperparams
    assert not bench.reinit.isEnabled() and not hyper.apply_button.isEnabled()
    assert not window.controller.apply_remedy("lower_lr", 10.0)
    with qtbot.waitSignal(window.stepped, timeout=LOAD_MS):
        window.actions_.step.trigger()
    assert bench.reinit.isEnabled() and hyper.apply_button.isEnabled()


def test_hyperparameters_change_between_steps_and_are_marked(qtbot, window):
    open_file(qtbot, window, SAMPLES["dying_relu"])
    hyper = window.docks.hyperparams
    qtbot.waitUntil(lambda: hyper.current.get("lr") == 0.5, timeout=LOAD_MS)
    run_steps(qtbot, window, 2)
    hyper.boxes["lr"].setValue(0.05)
    hyper.clip_on.setChecked(True)
    hyper.clip.setValue(2.0)
    hyper.apply_button.click()
    qtbot.waitUntil(lambda: len(window.history.interventions) == 2, timeout=LOAD_MS)
    assert [label for _, label in window.history.interventions] == ["lr 0.5 -> 0.05", "gradient clipping at 2"]
    qtbot.waitUntil(lambda: hyper.current.get("lr") == 0.05 and hyper.current.get("clip") == 2.0, timeout=LOAD_MS)
    in_force = training_state(qtbot, window)["hyperparameters"]  # read in the experiment process itself
    assert in_force["lr"] == 0.05 and in_force["clip"] == 2.0
    views = window.page
    qtbot.waitUntil(lambda: len(views.loss_view.marks.lines) == 2, timeout=LOAD_MS)
    window.page.tabs.setCurrentWidget(window.page.dead_units_view)
    qtbot.waitUntil(
        lambda: len(views.dead_units_view.marks.lines) == 2 and len(views.gradient_flow_view.marks.lines) == 2,
        timeout=LOAD_MS,
    )
    window.page.tabs.setCurrentWidget(window.page.histogram_view)
    heatmaps = (views.histogram_view.activation_map, views.histogram_view.gradient_map)
    qtbot.waitUntil(lambda: all(len(m.marks.lines) == 2 for m in heatmaps), timeout=LOAD_MS)
    with qtbot.waitSignal(window.run_started, timeout=LOAD_MS):
        window.actions_.run.trigger()
    assert not hyper.apply_button.isEnabled()  # not while running
    with qtbot.waitSignal(window.run_finished, timeout=LOAD_MS):
        window.actions_.pause.trigger()
    assert hyper.apply_button.isEnabled()


@pytest.mark.parametrize(("screen", "columns"), [((1280, 800), 2), ((1600, 1000), 4)])
def test_every_remedy_button_is_inside_the_workbench_dock(qtbot, window, screen, columns):
    window.reset_layout(QRect(0, 0, *screen))
    window.resize(*screen)
    open_file(qtbot, window, SAMPLES["dying_relu"])
    run_steps(qtbot, window, 1)
    dock = window.docks.workbench_dock
    dock.show()
    dock.raise_()
    bench = window.docks.workbench
    qtbot.waitUntil(bench.undo.isVisible, timeout=LOAD_MS)
    viewport = dock.widget().viewport() if hasattr(dock.widget(), "viewport") else dock.widget()
    for button in [*bench.buttons, bench.clip_value, bench.steps]:
        right = button.mapTo(viewport, button.rect().topRight()).x()
        assert right < viewport.width(), f"{button.text() if hasattr(button, 'text') else button}: past the edge"
    assert bench.remedy_grid.columns == columns  # wide: three rows, so the table keeps its height
    if screen == (1600, 1000):  # the low dock row: the dead-units plot beside the timeline, not cut off below it
        assert bench.plots.orientation() == Qt.Orientation.Horizontal
        plots = (bench.timeline_widget, bench.curves_widget)
        qtbot.waitUntil(lambda: all(p.mapTo(viewport, p.rect().bottomLeft()).y() < viewport.height() for p in plots))


def test_the_remedy_message_does_not_move_continue_from_under_the_mouse(qtbot, window):
    window.reset_layout(QRect(0, 0, 1280, 800))
    window.resize(1280, 800)
    open_file(qtbot, window, SAMPLES["dying_relu"])
    run_steps(qtbot, window, 2)
    window.docks.workbench_dock.show()
    window.docks.workbench_dock.raise_()
    bench = window.docks.workbench
    qtbot.waitUntil(bench.go.isVisible, timeout=LOAD_MS)
    continue_at = bench.go.mapTo(window, bench.go.rect().topLeft())
    bench.reinit.click()
    qtbot.waitUntil(lambda: "re-initialised" in bench.message.text(), timeout=LOAD_MS)
    assert bench.go.mapTo(window, bench.go.rect().topLeft()) == continue_at


def test_reset_leaves_nothing_of_the_previous_training_in_the_workbench(qtbot, window):
    """After Reset the header still read "relu2 step 8 · 61 of 64 units dead", over an empty layer list."""
    open_file(qtbot, window, SAMPLES["dying_relu"])
    run_steps(qtbot, window, 2)
    bench = window.docks.workbench
    bench.leaky.click()
    qtbot.waitUntil(lambda: bench.undo.isEnabled(), timeout=LOAD_MS)
    bench.undo.click()
    qtbot.waitUntil(lambda: len(window.history.interventions) == 2, timeout=LOAD_MS)
    run_steps(qtbot, window, 1)
    assert "of 64 units dead" in bench.summary.full_text()
    with qtbot.waitSignal(window.loaded, timeout=LOAD_MS):
        window.actions_.reset.trigger()
    qtbot.waitUntil(lambda: not window.controller.busy, timeout=LOAD_MS)
    assert bench.layer is None and bench.layer_box.count() == 0
    assert "of 64 units" not in bench.summary.full_text() and "dead" not in bench.summary.full_text()
    assert bench.compare.text() == "" and bench.table.rowCount() == 0
    assert not bench.undo.isEnabled() and not bench.reinit.isEnabled()
    for plot in (bench.timeline, bench.curves):  # no axis kept from the run before
        assert all(plot.getViewBox().autoRangeEnabled())
        assert plot.getViewBox().viewRange()[0] == [0, 1]  # not its steps, which it kept while empty


def test_the_workbench_says_inactive_after_a_leaky_swap_and_compares_around_an_undo(qtbot, window):
    """After the LeakyReLU swap it read "62 of 64 units dead" and "dead units 61 → 62" in red; after Undo its line
    still credited the undone remedy with what followed, then compared the ReLU's dead units with the LeakyReLU's
    inactive ones as if they had been dead ("62 → 62")."""
    open_file(qtbot, window, SAMPLES["dying_relu"])
    run_steps(qtbot, window, 2)
    bench = window.docks.workbench
    before = dead(window)
    bench.leaky.click()
    qtbot.waitUntil(lambda: len(window.history.interventions) == 1, timeout=LOAD_MS)
    # swapped, though no step has run through the LeakyReLU yet: swapping again would change nothing
    qtbot.waitUntil(lambda: bench.undo.isEnabled(), timeout=LOAD_MS)
    assert not bench.leaky.isEnabled() and bench.gelu.isEnabled()
    assert bench.message.text().endswith("Continue training to compare.")
    run_steps(qtbot, window, 1)
    assert bench.message.text() == "Applied from step 2: relu2: ReLU -> LeakyReLU."  # trained through it now
    silent = dead(window)
    assert silent > 32 and f"{silent} of 64 units inactive, not dead" in bench.summary.full_text()
    assert bench.layer_box.currentText().endswith(" inactive)")
    assert not bench.leaky.isEnabled() and bench.gelu.isEnabled()  # it is a LeakyReLU already
    qtbot.waitUntil(lambda: bench.units_step == 2, timeout=LOAD_MS)
    assert bench.table_title.text().startswith("Inactive units of relu2 at step 2")
    assert "LeakyReLU passes them a gradient" in bench.summary.full_text()
    # a unit falling silent under the LeakyReLU has not died: its step is when it fell silent
    assert bench.table.horizontalHeaderItem(1).text() == "silent since step"
    assert bench.timeline.titleLabel.text.startswith("○ = fell silent")
    assert "the first fell silent" in bench.summary.full_text()
    compared = bench.compare.text().replace("&nbsp;", " ")
    assert "Since step 2 (relu2: ReLU -> LeakyReLU)" in compared
    assert f"{before} → 0" in compared and f"({silent} inactive, not dead)" in compared
    inactive = bench.dead_and_loss.inactive_curve
    assert list(inactive.getData()[1]) == [0, 0, silent] and bench.dead_and_loss.legend.getLabel(inactive)
    assert list(bench.dead_curve.getData()[1][1:]) == [before, 0]  # the LeakyReLU's silent units are not dead
    bench.undo.click()
    qtbot.waitUntil(lambda: len(window.history.interventions) == 2, timeout=LOAD_MS)
    qtbot.waitUntil(lambda: bench.leaky.isEnabled(), timeout=LOAD_MS)  # a ReLU again: before the next step too
    run_steps(qtbot, window, 1)
    compared = bench.compare.text().replace("&nbsp;", " ")
    # the undo is compared with the LeakyReLU's steps: none of their silent units was dead
    assert "Since step 3 (undo: relu2: ReLU -> LeakyReLU)" in compared
    assert f"0 → {dead(window)}" in compared and f"(before: {silent} inactive, not dead)" in compared
    assert f"{dead(window)} of 64 units dead" in bench.summary.full_text()
    qtbot.waitUntil(lambda: bench.units_step == 3, timeout=LOAD_MS)
    assert bench.table.horizontalHeaderItem(1).text() == "died at step"
    assert bench.timeline.titleLabel.text.startswith("○ = died")


def test_a_remedy_clicked_leaves_the_keyboard_focus_where_it_was(qtbot, window):
    """A click focused the button, the request disabled it, and the focus moved to the clip value, text selected."""
    open_file(qtbot, window, SAMPLES["dying_relu"])
    run_steps(qtbot, window, 2)
    bench = window.docks.workbench
    window.docks.workbench_dock.show()
    window.docks.workbench_dock.raise_()
    qtbot.waitUntil(bench.leaky.isVisible, timeout=LOAD_MS)
    qtbot.mouseClick(bench.leaky, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(window.history.interventions) == 1, timeout=LOAD_MS)
    assert not bench.clip_value.hasFocus() and not bench.leaky.hasFocus()


def test_the_dead_units_table_follows_a_run_from_the_steps_records(qtbot, window):
    """During a run the table kept the units of the step before it ("at step 99" with the window at step 856):
    the experiment process, training, cannot be asked; the step's record tells them."""
    open_file(qtbot, window, SAMPLES["dying_relu"])
    run_steps(qtbot, window, 2)
    bench = window.docks.workbench
    qtbot.waitUntil(lambda: bench.units_step == 1, timeout=LOAD_MS)
    window.controller.busy = True  # as while a run trains
    window.docks.on_redrawn(1)
    record = window.history.latest.layer("relu2")
    assert bench.units_step == 1 and [u.unit for u in bench.units] == record.dead_unit_ids.tolist()
    assert [u.died_at for u in bench.units] == record.dead_since.tolist()
    assert all(u.weight_norm is None for u in bench.units)  # the process holds the weights
    window.controller.busy = False
    window.update_actions()
    qtbot.waitUntil(lambda: bench.units and bench.units[0].weight_norm is not None, timeout=LOAD_MS)
