"""User code that kills, hangs or ends its process: the window (experiment in a child process) stays alive.

Each experiment misbehaves in the forward pass of step 2 (its third call), after
two recorded steps, or in build(). The window shows what happened, keeps both
recorded steps, and Reset (or opening another file) gives a working model again.
"""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings

from bpviz.gui.window.main_window import MainWindow
from bpviz.gui.window.settings import Settings
from tests.gui.window_driver import LOAD_MS, SAMPLES, open_file, write

EXPERIMENT = """
import os, sys, ctypes
import torch
from torch import nn


class Misbehaves(nn.Module):
    calls = 0

    def forward(self, x):
        Misbehaves.calls += 1
        if Misbehaves.calls == 3:
{action}
        return x


def build():
{in_build}
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), Misbehaves(), nn.Linear(8, 3))
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(16, 4, generator=g), torch.randint(0, 3, (16,), generator=g))]
    return {{"model": model, "train_data": data, "optimizer": torch.optim.SGD(model.parameters(), lr=0.01)}}
"""

SPIN = "while True:\n    pass"
DEATHS = {  # what the user code does in step 2 -> the start of what the window says
    "sys.exit(3)": "the forward pass at step 2 called sys.exit(3) at dies.py:13",  # caught: the process lives on
    "os._exit(4)": "The experiment process exited with code 4 at step 2",
    "raise KeyboardInterrupt": "the forward pass failed at step 2",  # caught: the process lives on
    "ctypes.string_at(0)": "The experiment process was killed by signal SIGSEGV at step 2",
}


def indent(code: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line for line in code.splitlines())


def experiment(tmp_path, name: str, action: str = "pass", in_build: str = "pass"):
    return write(tmp_path, f"{name}.py", EXPERIMENT.format(action=indent(action, 12), in_build=indent(in_build, 4)))


@pytest.fixture
def window(qtbot, tmp_path):
    window = MainWindow(
        settings=Settings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)), child_process=True
    )
    qtbot.addWidget(window)
    window.show()
    yield window
    window.close()


def run_until_failed(qtbot, window, path):
    """Open `path`, run, and wait for the failure shown; the error."""
    failed = []
    window.failed.connect(failed.append)
    open_file(qtbot, window, path)
    window.actions_.run.trigger()
    qtbot.waitUntil(lambda: bool(failed), timeout=LOAD_MS)
    return failed[0]


def reset_works(qtbot, window) -> None:
    with qtbot.waitSignal(window.loaded, timeout=LOAD_MS):
        window.actions_.reset.trigger()
    with qtbot.waitSignal(window.stepped, timeout=LOAD_MS):
        window.actions_.step.trigger()
    assert window.history.latest.step == 0


@pytest.mark.parametrize("action", list(DEATHS))
def test_user_code_that_ends_its_process_is_shown_with_the_steps_kept_and_reset_works(qtbot, window, tmp_path, action):
    error = run_until_failed(qtbot, window, experiment(tmp_path, "dies", action))
    assert error.what == DEATHS[action]
    assert window.error_panel.isVisible() and window.error_panel.title.text() == error.what
    assert [r.step for r in window.history.records] == [0, 1]  # both recorded steps kept
    assert not window.controller.running and window.actions_.reset.isEnabled()
    reset_works(qtbot, window)


def test_stop_ends_a_step_that_never_returns(qtbot, window, tmp_path):
    open_file(qtbot, window, experiment(tmp_path, "spins", SPIN))
    failed = []
    window.failed.connect(failed.append)
    window.actions_.run.trigger()
    qtbot.waitUntil(lambda: len(window.history) == 2, timeout=LOAD_MS)  # step 2 now spins
    child = window.controller.worker.current.process
    window.actions_.pause.trigger()
    qtbot.waitUntil(lambda: bool(failed), timeout=LOAD_MS)
    assert failed[0].what == "The experiment process was ended by Stop at step 2"
    assert not child.is_alive() and [r.step for r in window.history.records] == [0, 1]
    reset_works(qtbot, window)


def test_opening_another_file_while_build_spins_kills_the_hung_load(qtbot, window, tmp_path):
    path = experiment(tmp_path, "build_spins", in_build=SPIN)
    window.code_trust.trusted.trust_for_session(path)
    assert window.open_path(path)
    qtbot.waitUntil(lambda: window.controller.worker.pending is not None)
    hung = window.controller.worker.pending.process
    open_file(qtbot, window, SAMPLES["dying_relu"])
    assert not hung.is_alive()
    with qtbot.waitSignal(window.stepped, timeout=LOAD_MS):
        window.actions_.step.trigger()


def test_quit_while_user_code_spins_leaves_no_child_process(qtbot, window, tmp_path):
    open_file(qtbot, window, experiment(tmp_path, "spins", SPIN))
    window.actions_.run.trigger()
    qtbot.waitUntil(lambda: len(window.history) == 2, timeout=LOAD_MS)
    children = window.controller.worker.processes()
    assert children and all(p.is_alive() for p in children)
    window.close()
    assert not any(p.is_alive() for p in children)
