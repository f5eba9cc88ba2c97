"""Breakpoints in the window: a run stops where the condition first holds, says why, and the list is saved per file."""

from __future__ import annotations

import pytest

from bpviz.engine.session.breakpoints import Breakpoint
from bpviz.gui.panels.breakpoints_panel import BreakpointDialog, BreakpointsPanel
from tests.gui.window_driver import LOAD_MS, NAN_AT_STEP_3, SAMPLES, make_window, open_file, training_state, write


def add(window, breakpoint: Breakpoint) -> None:
    """Add a breakpoint through the panel's Add button (the dialog's answer canned)."""
    panel = window.docks.breakpoints
    panel.ask = lambda layers: breakpoint
    panel.add_button.click()


def run_until_stopped(qtbot, window) -> str:
    with qtbot.waitSignal(window.run_finished, timeout=LOAD_MS) as blocker:
        window.actions_.run.trigger()
    return blocker.args[0]


def test_nan_breakpoint_stops_at_the_birth_layer_and_step(qtbot, window, tmp_path):
    open_file(qtbot, window, write(tmp_path, "nan_at_3.py", NAN_AT_STEP_3))
    add(window, Breakpoint("nan"))
    assert run_until_stopped(qtbot, window) == "breakpoint"
    assert window.history.latest.step == 3 and len(window.history) == 4
    qtbot.waitUntil(lambda: window.page.selected_layer() == "2", timeout=LOAD_MS)
    panel = window.docks.breakpoints
    assert panel.hit_label.isVisible() and "step 3" in panel.hit_label.text() and "at 2" in panel.hit_label.text()
    assert "breakpoint" in window.statusBar().currentMessage() and "step 3" in window.statusBar().currentMessage()
    panel.set_enabled_at(0, False)
    with qtbot.waitSignal(window.run_finished, timeout=LOAD_MS) as blocker:
        window.run_n(2)  # running on (the breakpoint unticked) clears the message
    assert blocker.args == ["done"] and not panel.hit_label.isVisible()


def test_a_disabled_breakpoint_does_not_stop(qtbot, window, tmp_path):
    open_file(qtbot, window, write(tmp_path, "nan_at_3.py", NAN_AT_STEP_3))
    add(window, Breakpoint("nan"))
    window.docks.breakpoints.set_enabled_at(0, False)
    with qtbot.waitSignal(window.run_finished, timeout=LOAD_MS) as blocker:
        window.run_n(6)
    assert blocker.args == ["done"] and len(window.history) == 6


def test_dead_share_breakpoint_on_the_dying_relu_sample(qtbot, window):
    open_file(qtbot, window, SAMPLES["dying_relu"])
    add(window, Breakpoint("dead_share", threshold=0.5, layer="relu2"))
    assert run_until_stopped(qtbot, window) == "breakpoint"
    record = window.history.latest
    relu2 = record.layer("relu2")
    assert relu2.dead_units / relu2.units > 0.5
    assert all(r.layer("relu2").dead_units / r.layer("relu2").units <= 0.5 for r in list(window.history.records)[:-1])
    qtbot.waitUntil(lambda: window.page.selected_layer() == "relu2", timeout=LOAD_MS)


def test_breakpoints_are_saved_with_the_file(qtbot, tmp_path):
    path = write(tmp_path, "nan_at_3.py", NAN_AT_STEP_3)
    first = make_window(qtbot, tmp_path / "settings.ini")
    open_file(qtbot, first, path)
    add(first, Breakpoint("nan"))
    add(first, Breakpoint("grad_above", threshold=100.0, layer="3"))
    first.docks.breakpoints.set_enabled_at(1, False)
    first.close()
    second = make_window(qtbot, tmp_path / "settings.ini")
    open_file(qtbot, second, path)
    assert second.docks.breakpoints.breakpoints() == [
        Breakpoint("nan"),
        Breakpoint("grad_above", threshold=100.0, layer="3", enabled=False),
    ]
    assert training_state(qtbot, second)["breakpoints"] == second.docks.breakpoints.breakpoints()
    open_file(qtbot, second, SAMPLES["dying_relu"])  # another file has its own (none)
    assert second.docks.breakpoints.breakpoints() == []
    second.close()


def test_remove_and_list(qtbot):
    panel = BreakpointsPanel()
    qtbot.addWidget(panel)
    panel.set_breakpoints([Breakpoint("nan"), Breakpoint("loss_jump", threshold=3.0)])
    assert [panel.list.item(i).text() for i in range(panel.list.count())] == [
        "NaN/Inf appears",
        "loss jumps by more than x3",
    ]
    with qtbot.waitSignal(panel.changed) as blocker:
        panel.list.setCurrentRow(0)
        panel.remove_button.click()
    assert blocker.args[0] == [Breakpoint("loss_jump", threshold=3.0)]


@pytest.mark.parametrize(
    "kind, fill, expected",
    [
        ("dead_share", {"threshold": 40.0, "layer": "relu2"}, Breakpoint("dead_share", threshold=0.4, layer="relu2")),
        ("grad_below", {"threshold": 1e-6}, Breakpoint("grad_below", threshold=1e-6)),
        (
            "finding",
            {"finding_kind": "dead_relu", "severity": "error"},
            Breakpoint("finding", finding_kind="dead_relu", severity="error"),
        ),
        ("loss_jump", {"threshold": 4.0}, Breakpoint("loss_jump", threshold=4.0)),
        ("nan", {}, Breakpoint("nan")),
    ],
)
def test_the_add_dialog_builds_each_kind(qtbot, kind, fill, expected):
    dialog = BreakpointDialog(["fc1", "relu2"])
    qtbot.addWidget(dialog)
    dialog.set_kind(kind)
    if "threshold" in fill:
        dialog.threshold.setValue(fill["threshold"])
    if "layer" in fill:
        dialog.layer.setCurrentText(fill["layer"])
    if "finding_kind" in fill:
        dialog.finding_kind.setCurrentText(fill["finding_kind"])
        dialog.severity.setCurrentText(fill["severity"])
    assert dialog.breakpoint() == expected
