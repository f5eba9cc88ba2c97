"""Driving the real window the way a person does: open a file, run steps, step into, run to a breakpoint."""

from __future__ import annotations

import textwrap
from pathlib import Path

import torch
from PySide6.QtCore import QSettings

from bpviz.engine.load.samples import list_samples
from bpviz.engine.session.step_gate import PhaseEvent
from bpviz.gui.window.dialogs import Dialogs
from bpviz.gui.window.main_window import MainWindow
from bpviz.gui.window.settings import Settings

LOAD_MS = 60_000
SAMPLES = {path.stem: path for path, _ in list_samples()}

# A model whose third layer turns its output into NaN in the fourth training step (step 3), and only then.
NAN_AT_STEP_3 = """
    import torch
    from torch import nn


    class BlowUp(nn.Module):
        def __init__(self):
            super().__init__()
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            return x * float("nan") if self.calls == 4 else x


    def build():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), BlowUp(), nn.Linear(8, 3))
        g = torch.Generator().manual_seed(0)
        data = [(torch.randn(16, 4, generator=g), torch.randint(0, 3, (16,), generator=g))]
        return {"model": model, "train_data": data, "optimizer": torch.optim.SGD(model.parameters(), lr=0.01)}
"""


def make_window(qtbot, ini: Path, dialogs: Dialogs | None = None) -> MainWindow:
    """A shown window with its own settings file (and dialogs a test may replace)."""
    window = MainWindow(
        settings=Settings(QSettings(str(ini), QSettings.Format.IniFormat)), dialogs=dialogs or Dialogs()
    )
    qtbot.addWidget(window)
    window.show()
    return window


def open_file(qtbot, window: MainWindow, path: Path, **options) -> None:
    """Open `path` as File > Open does, trusted as a file named on the command line; wait until the page shows it."""
    window.code_trust.trusted.trust_for_session(path)
    with qtbot.waitSignal(window.loaded, timeout=LOAD_MS):
        assert window.open_path(path, **options)
    assert window.stack.currentWidget() is window.page


def run_steps(qtbot, window: MainWindow, n: int) -> None:
    """Run N through the toolbar and wait until the window shows the last step."""
    target = len(window.history) + n - 1
    with qtbot.waitSignal(window.run_finished, timeout=LOAD_MS):
        window.actions_.steps_box.setValue(n)
        window.actions_.run_n.trigger()
    qtbot.waitUntil(lambda: window.shown_step == target, timeout=LOAD_MS)


def step_into(qtbot, window: MainWindow) -> PhaseEvent:
    """Press F11 (Step Into) and wait for the step to pause; the pause's event."""
    before = window.controller.paused_at
    window.actions_.step_into.trigger()
    # while paused, the previous pause's event stays until the next one arrives: wait for a new one
    qtbot.waitUntil(lambda: (now := window.controller.paused_at) is not None and now is not before, timeout=LOAD_MS)
    return window.controller.paused_at


def training_state(qtbot, window: MainWindow, tensors: bool = False) -> dict:
    """What the experiment process holds now, asked over the control channel (answered even mid-step)."""
    with qtbot.waitSignal(window.controller.state_reported, timeout=LOAD_MS) as answer:
        window.controller.query_state(tensors)
    return answer.args[0]


def weights(qtbot, window: MainWindow) -> list[torch.Tensor]:
    """The model's parameters, as the experiment process has them."""
    return training_state(qtbot, window, tensors=True)["parameters"]


def state(qtbot, window: MainWindow) -> list[torch.Tensor]:
    """Parameters and buffers (BatchNorm's running statistics change during the forward pass)."""
    answer = training_state(qtbot, window, tensors=True)
    return answer["parameters"] + answer["buffers"]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


def write(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path
