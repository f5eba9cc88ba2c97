"""Rewind in the window: Train > Rewind to Step… goes back, a change is made, the run file keeps both branches."""

from __future__ import annotations

import textwrap

import pytest

import bpviz
from bpviz.gui.panels.hyperparams_panel import EDITABLE
from bpviz.gui.window.dialogs import Dialogs
from bpviz.gui.window.runs_folder import run_label
from tests.engine.test_rewind import EXPERIMENT, recorded_rewind, same, statistics
from tests.gui.test_recordings import MEAN, bring_forward, loss_curve, table_values
from tests.gui.window_driver import LOAD_MS, open_file, run_steps


class RewindTo3(Dialogs):
    """Answers Train > Rewind to Step… with step 3."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    def ask_rewind_step(self, parent, latest: int) -> int | None:
        self.asked.append(latest)
        return 3


@pytest.fixture
def dialogs() -> Dialogs:
    return RewindTo3()


def test_rewind_through_the_menu_then_a_new_learning_rate_makes_a_second_branch(qtbot, window, dialogs, tmp_path):
    path = tmp_path / "dropout.py"
    path.write_text(textwrap.dedent(EXPERIMENT))
    open_file(qtbot, window, path)
    rewind = window.actions_.rewind
    assert not rewind.isEnabled()  # nothing trained yet
    run_steps(qtbot, window, 1)
    assert not rewind.isEnabled()  # at step 0: no step before it to go back to
    run_steps(qtbot, window, 9)
    assert rewind.isEnabled()
    assert not window.controller.rewind(9)  # the step trained last: going back there would change nothing
    recorded = window.controller.run_path
    assert len(bpviz.open_run(recorded)) == 10  # every step the window shows is in the file
    branch_1 = bpviz.open_run(recorded)
    with qtbot.waitSignal(window.controller.rewound, timeout=LOAD_MS) as rewound:
        rewind.trigger()
    assert dialogs.asked == [9] and rewound.args == [3, 2]
    qtbot.waitUntil(lambda: window.shown_step == 3, timeout=LOAD_MS)
    then = branch_1.record(3)
    assert window.page.table_model.step == 3
    assert table_values(window, MEAN) == {layer.name: layer.mean for layer in then.layers}
    assert [r.step for r in window.history.records] == [0, 1, 2, 3]
    assert "Back at step 3" in window.statusBar().currentMessage()

    with qtbot.waitSignal(window.controller.remedy_applied, timeout=LOAD_MS):
        assert window.controller.apply_remedy("set_hyperparameter", "lr", 0.5)
    run_steps(qtbot, window, 6)
    assert window.history.latest.step == 9
    qtbot.waitUntil(lambda: len(bpviz.open_run(recorded, branch=2)) == 10, timeout=LOAD_MS)
    with bpviz.open_run(recorded, branch=2) as branch_2:
        assert [(b.id, b.parent, b.fork_step) for b in branch_2.branches()] == [(1, None, None), (2, 1, 3)]
        assert same(statistics(branch_2.record(9)), statistics(window.history.latest))
        assert branch_2.interventions == [(4, "lr 0.01 -> 0.5")]
    branch_1.close()


def test_a_recording_cannot_be_rewound_and_compares_its_branches_side_by_side(qtbot, window, tmp_path):
    path, first, again = recorded_rewind(tmp_path, lr=0.5)
    # the start page's name for it: the steps opening it shows (the run as first trained), and that it branched
    assert run_label(path).endswith("  ·  10 steps, 2 branches  —  run.bpviz")
    assert window.open_path(path)
    qtbot.waitUntil(lambda: window.shown_step == 9, timeout=LOAD_MS)
    assert not window.actions_.rewind.isEnabled()
    result = window.compare_with(path)  # File > Compare With… on its own file: its branches side by side
    assert result["divergence"]["step"] == 4 and result["b"].endswith("(branch 2)")
    assert "compared with run.bpviz (branch 2)" in window.windowTitle()
    bring_forward(window, window.page.loss_view)  # a plot tab at 1280x800: its overlay is drawn once it is shown
    qtbot.waitUntil(lambda: window.comparison.loss.getData()[0] is not None, timeout=LOAD_MS)
    steps_b, losses_b = loss_curve(window, window.comparison.loss)
    assert list(steps_b) == list(range(10))
    assert list(losses_b) == [r.loss for r in first[:4]] + [r.loss for r in again]


def test_a_rewind_before_a_remedy_takes_back_what_the_panels_said_of_it(qtbot, window, dialogs, tmp_path):
    """The lr change at step 10 is not in the branch from step 3: no panel may still say it was applied, and
    the status bar's "Back at step 3" goes once a step of the new branch is recorded."""
    path = tmp_path / "dropout.py"
    path.write_text(textwrap.dedent(EXPERIMENT))
    open_file(qtbot, window, path)
    run_steps(qtbot, window, 10)
    with qtbot.waitSignal(window.controller.remedy_applied, timeout=LOAD_MS):
        assert window.controller.apply_remedy("set_hyperparameter", "lr", 0.5)
    workbench, hyperparams = window.docks.workbench, window.docks.hyperparams
    assert workbench.message.text() == "Applied from step 10: lr 0.01 -> 0.5. Continue training to compare."
    assert hyperparams.note.text() == "From step 10: lr 0.01 -> 0.5"
    with qtbot.waitSignal(window.controller.rewound, timeout=LOAD_MS):
        window.actions_.rewind.trigger()
    qtbot.waitUntil(lambda: window.shown_step == 3, timeout=LOAD_MS)
    assert workbench.message.text() == ""
    assert hyperparams.note.text() == EDITABLE
    assert window.history.interventions == []
    assert "Back at step 3" in window.statusBar().currentMessage()
    run_steps(qtbot, window, 1)
    assert window.history.latest.step == 4
    assert window.statusBar().currentMessage() == ""
