"""Step Into / Over / Out in the real window: live pauses in execution order, and stopping leaves nothing stuck."""

from __future__ import annotations

import pytest

from bpviz.engine.runs.reader import open_run
from tests.gui.window_driver import (
    LOAD_MS,
    SAMPLES,
    make_window,
    open_file,
    run_steps,
    same,
    state,
    step_into,
    training_state,
    weights,
)


def test_step_into_visits_layers_in_execution_order_and_only_the_update_changes_weights(qtbot, window):
    open_file(qtbot, window, SAMPLES["healthy_resnet"])
    run_steps(qtbot, window, 2)  # the network view knows the graph
    before = weights(qtbot, window)
    network = window.docks.network
    visited, unchanged = [], []
    event = step_into(qtbot, window)
    while True:
        visited.append((event.phase, event.layer))
        unchanged.append(same(before, weights(qtbot, window)))
        assert window.docks.step_panel.event is event
        if event.layer is not None:  # the network view marks the current layer and the wavefront of this phase
            assert network.current == event.layer and network.items[event.layer].current
            phase_so_far = [layer for phase, layer in visited if phase == event.phase]
            assert network.visited == phase_so_far
            assert all(network.items[name].visited == event.phase for name in phase_so_far)
        if event.phase == "update":
            assert event.update_ratios and all(r >= 0 for r in event.update_ratios.values())
            break
        event = step_into(qtbot, window)
    with qtbot.waitSignal(window.stepped, timeout=LOAD_MS):
        window.actions_.step_into.trigger()  # past the update: the step ends
    record = window.history.latest
    assert record.step == 2
    assert [layer for phase, layer in visited if phase == "forward"] == [l.name for l in record.layers]
    assert [layer for phase, layer in visited if phase == "backward"] == record.backward_order
    phases = [phase for phase, _ in visited]
    assert phases == ["forward"] * len(record.layers) + ["loss"] + ["backward"] * len(record.backward_order) + [
        "update"
    ]
    assert all(unchanged[:-1]) and not unchanged[-1]  # nothing changes the weights before the update
    assert not window.controller.stepping and network.current is None
    assert window.docks.step_panel.event is None
    assert window.statusBar().currentMessage() != "Stepping into the step…"  # F11 at the update ended the step


def test_step_out_finishes_the_phase_and_step_over_the_step(qtbot, window):
    open_file(qtbot, window, SAMPLES["dying_relu"])
    first = step_into(qtbot, window)  # the very first step: the graph grows as the forward pass reaches layers
    assert (first.step, first.phase, first.layer) == (0, "forward", "fc1")
    assert window.docks.network.names == ["fc1"]
    assert window.actions_.step_out.isEnabled() and window.actions_.run.text() == "&Continue"
    window.actions_.step_out.trigger()
    qtbot.waitUntil(lambda: window.controller.paused_at is not None, timeout=LOAD_MS)
    assert window.controller.paused_at.phase == "loss"
    window.actions_.step_out.trigger()
    qtbot.waitUntil(lambda: window.controller.paused_at is not None, timeout=LOAD_MS)
    assert (window.controller.paused_at.phase, window.controller.paused_at.layer) == ("backward", "out")
    with qtbot.waitSignal(window.stepped, timeout=LOAD_MS):
        window.actions_.step.trigger()  # F10 while paused: finish this step
    assert len(window.history) == 1 and not window.actions_.step_out.isEnabled()
    qtbot.waitUntil(lambda: window.docks.network.names == ["fc1", "relu1", "fc2", "relu2", "out"], timeout=LOAD_MS)
    with qtbot.waitSignal(window.stepped, timeout=LOAD_MS):
        window.actions_.step.trigger()  # F10 while not paused: one whole step
    assert len(window.history) == 2


def test_continue_while_paused_finishes_the_step_and_runs_on(qtbot, window):
    open_file(qtbot, window, SAMPLES["dying_relu"])
    step_into(qtbot, window)
    with qtbot.waitSignal(window.run_started, timeout=LOAD_MS):
        window.actions_.run.trigger()  # F5: Continue
    qtbot.waitUntil(lambda: len(window.history) >= 3, timeout=LOAD_MS)
    with qtbot.waitSignal(window.run_finished, timeout=LOAD_MS):
        window.actions_.pause.trigger()
    assert window.controller.paused_at is None and not window.controller.stepping


@pytest.mark.parametrize("stop_in", ["forward", "loss", "backward"])
def test_stopping_while_paused_keeps_the_model_and_history_as_before(qtbot, window, stop_in):
    open_file(qtbot, window, SAMPLES["healthy_resnet"])
    run_steps(qtbot, window, 1)
    before = state(qtbot, window)
    event = step_into(qtbot, window)
    while event.phase != stop_in:
        event = step_into(qtbot, window)
    window.actions_.pause.trigger()  # F6 while paused: stop the step where it is
    qtbot.waitUntil(lambda: not window.controller.stepping and window.docks.step_panel.event is None, timeout=LOAD_MS)
    assert same(before, state(qtbot, window))
    assert len(window.history) == 1 and training_state(qtbot, window)["step_index"] == 1
    assert window.docks.step_panel.event is None and window.docks.network.current is None
    assert window.actions_.step.isEnabled() and not window.actions_.pause.isEnabled()
    with qtbot.waitSignal(window.stepped, timeout=LOAD_MS):
        window.actions_.step.trigger()  # and training goes on normally
    assert window.history.latest.step == 1


def test_stopping_at_the_update_finishes_the_step_it_has_already_changed(qtbot, window):
    open_file(qtbot, window, SAMPLES["dying_relu"])
    event = step_into(qtbot, window)
    while event.phase != "update":  # Shift+F11: forward -> loss -> backward -> update
        window.actions_.step_out.trigger()
        qtbot.waitUntil(lambda: window.controller.paused_at is not None, timeout=LOAD_MS)
        event = window.controller.paused_at
    with qtbot.waitSignal(window.stepped, timeout=LOAD_MS):
        window.actions_.pause.trigger()
    assert len(window.history) == 1 and training_state(qtbot, window)["step_index"] == 1


def test_reset_while_paused_rebuilds_the_model(qtbot, window):
    open_file(qtbot, window, SAMPLES["dying_relu"])
    run_steps(qtbot, window, 2)
    step_into(qtbot, window)
    step_into(qtbot, window)
    with qtbot.waitSignal(window.loaded, timeout=LOAD_MS):
        window.actions_.reset.trigger()
    assert len(window.history) == 0 and window.controller.paused_at is None and not window.controller.stepping
    assert training_state(qtbot, window)["step_index"] == 0
    with qtbot.waitSignal(window.stepped, timeout=LOAD_MS):
        window.actions_.step.trigger()
    assert window.history.latest.step == 0


def test_closing_the_window_while_paused_ends_the_experiment_process(qtbot, tmp_path):
    window = make_window(qtbot, tmp_path / "settings.ini")
    open_file(qtbot, window, SAMPLES["dying_relu"])
    step_into(qtbot, window)
    children = window.controller.client.processes()
    window.close()
    assert children and not any(p.is_alive() for p in children)


def test_debug_menu_and_keys(window):
    a = window.actions_
    keys = {
        action.text(): action.shortcut().toString() for action in a.debug_menu.actions() if not action.isSeparator()
    }
    assert keys["Step &Into"] == "F11" and keys["Step &Over"] == "F10" and keys["Step O&ut"] == "Shift+F11"
    assert a.run.shortcut().toString() == "F5" and a.run in a.debug_menu.actions()


def test_quitting_during_a_run_kills_the_experiment_process_at_once_and_keeps_its_steps(qtbot, tmp_path):
    window = make_window(qtbot, tmp_path / "settings.ini")
    open_file(qtbot, window, SAMPLES["dying_relu"])
    window.actions_.run.trigger()
    qtbot.waitUntil(lambda: len(window.history) >= 2, timeout=LOAD_MS)  # a run is going
    children, shown, run_path = window.controller.client.processes(), len(window.history), window.controller.run_path
    assert children and all(p.is_alive() for p in children)
    window.close()
    assert not any(p.is_alive() for p in children)  # killed and reaped before close() returned: no orphan
    with open_run(run_path) as run:  # every step the window showed is in the run file, which the quit ended
        assert len(run) >= shown and run.status == "finished"


def test_the_step_panel_says_what_is_true_after_a_run_and_in_a_recording(qtbot, window):
    """It once kept saying "Step 0 finished." through a Run and a Pause hundreds of steps later, and a recording's
    panel offered Step Into (F11) with stepping disabled."""
    from bpviz.gui.panels.step_panel import IDLE_TEXT

    panel = window.docks.step_panel
    open_file(qtbot, window, SAMPLES["dying_relu"])
    step_into(qtbot, window)
    with qtbot.waitSignal(window.stepped, timeout=LOAD_MS):
        window.actions_.step.trigger()  # F10 while paused: the paused step finishes
    assert panel.title.text().endswith(">Step 0 finished.</span>")
    with qtbot.waitSignal(window.run_started, timeout=LOAD_MS):
        window.actions_.run.trigger()  # F5
    assert panel.idle_label.text() == IDLE_TEXT["running"]
    qtbot.waitUntil(lambda: len(window.history) >= 3, timeout=LOAD_MS)
    with qtbot.waitSignal(window.run_finished, timeout=LOAD_MS):
        window.actions_.pause.trigger()  # F6
    assert "finished" not in panel.title.text() and "Not paused" in panel.title.text()
    assert panel.idle_label.text() == IDLE_TEXT["ready"] and window.actions_.step_into.isEnabled()

    recorded = window.controller.run_path
    assert window.open_path(recorded)
    qtbot.waitUntil(lambda: window.shown_step == window.history.latest.step)
    assert not window.actions_.step_into.isEnabled()
    assert panel.idle_label.text() == IDLE_TEXT["recording"] and "F11) starts" not in panel.idle_label.text()
