"""A step entered with Step Into that then fails: the window shows the error, keeps every step, and stays usable.

The failure is in the forward pass, the backward pass or the optimizer's
update of the fourth step (step 3), reached with F11, Shift+F11 or F10 while
paused inside that step. Every case used to kill the process: a callable
connected to a training-thread signal touched widgets from that thread.
"""

from __future__ import annotations

import threading

import pytest

from tests.gui.window_driver import LOAD_MS, SAMPLES, open_file, run_steps, step_into, write

HEAD = """
    import torch
    from torch import nn


    class Boom(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, grad):
            raise RuntimeError("backward blew up")


    class Flaky(nn.Module):
        def __init__(self, where):
            super().__init__()
            self.where = where
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            if self.calls == 4 and self.where == "forward":
                raise ValueError("forward blew up")
            return Boom.apply(x) if self.calls == 4 and self.where == "backward" else x


    class FlakySGD(torch.optim.SGD):
        def __init__(self, params, where):
            super().__init__(params, lr=0.01)
            self.where = where
            self.calls = 0

        def step(self, closure=None):
            self.calls += 1
            if self.calls == 4 and self.where == "update":
                raise RuntimeError("update blew up")
            return super().step(closure)


    def build():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), Flaky(WHERE), nn.Linear(8, 3))
        g = torch.Generator().manual_seed(0)
        data = [(torch.randn(16, 4, generator=g), torch.randint(0, 3, (16,), generator=g))]
        return {"model": model, "train_data": data, "optimizer": FlakySGD(model.parameters(), WHERE)}
"""

WHAT = {
    "forward": "the forward pass failed at step 3",
    "backward": "the backward pass failed at step 3",
    "update": "the optimizer step failed at step 3",
}
KEYS = {"F11": "step_into", "Shift+F11": "step_out", "F10": "step"}


def experiment(tmp_path, where: str):
    return write(tmp_path, f"fails_in_{where}.py", HEAD + f"\n    WHERE = {where!r}\n")


def press_until_failed(qtbot, window, key: str):
    """Step into step 3, then press `key` while paused until the step fails; the error shown."""
    failed = []
    window.failed.connect(failed.append)
    event = step_into(qtbot, window)
    assert event.step == 3
    action = getattr(window.actions_, KEYS[key])
    for _ in range(100):
        before = window.controller.paused_at
        assert before is not None, "the step ended without failing"
        action.trigger()
        qtbot.waitUntil(
            lambda before=before: bool(failed) or window.controller.paused_at not in (None, before), timeout=LOAD_MS
        )
        if failed:
            return failed[0]
    raise AssertionError(f"{key} never reached the failure")


@pytest.mark.parametrize("key", list(KEYS))
@pytest.mark.parametrize("where", list(WHAT))
def test_a_failing_step_entered_with_step_into_is_shown_and_the_window_stays_usable(
    qtbot, window, tmp_path, where, key
):
    on_gui_thread = []
    answers = (
        "loaded",
        "failed",
        "stepped",
        "paused",
        "step_aborted",
        "run_finished",
        "graph_changed",
        "hyperparameters",
    )
    for name in answers:
        getattr(window.controller, name).connect(
            lambda *_args: on_gui_thread.append(threading.current_thread() is threading.main_thread())
        )
    open_file(qtbot, window, experiment(tmp_path, where))
    run_steps(qtbot, window, 3)  # steps 0-2 succeed

    error = press_until_failed(qtbot, window, key)

    assert error.what == WHAT[where]
    assert window.controller.has_model and all(p.is_alive() for p in window.controller.client.processes())
    assert window.error_panel.isVisible() and WHAT[where] in window.error_panel.text()
    if where != "update":  # the layer whose forward or backward raised, with its type
        assert error.layer == "2" and "layer: 2 (Flaky)" in window.error_panel.text()
    assert [record.step for record in window.history.records] == [0, 1, 2]  # every recorded step is kept
    assert window.controller.paused_at is None and not window.controller.stepping
    assert window.docks.step_panel.event is None and window.docks.network.current is None
    assert window.actions_.step.isEnabled() and window.actions_.step_into.isEnabled()
    assert not window.actions_.step_out.isEnabled() and not window.actions_.pause.isEnabled()
    qtbot.waitUntil(lambda: window.shown_step == 2, timeout=LOAD_MS)

    with qtbot.waitSignal(window.loaded, timeout=LOAD_MS):
        window.actions_.reset.trigger()
    assert len(window.history) == 0 and not window.error_panel.isVisible()
    with qtbot.waitSignal(window.stepped, timeout=LOAD_MS):
        window.actions_.step.trigger()
    assert window.history.latest.step == 0
    open_file(qtbot, window, SAMPLES["dying_relu"])  # and another file opens
    assert len(window.history) == 0 and window.windowTitle().startswith("dying_relu.py")
    assert on_gui_thread and all(on_gui_thread)


CONTAINER = """
import torch
from torch import nn


class Odd(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        if self.calls >= 3:
            raise RuntimeError("shape trouble in step 2")
        return self.fc(x)


def build():
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 4), Odd(), nn.Linear(4, 2))
    data = [(torch.randn(16, 8, generator=g), torch.randint(2, (16,), generator=g)) for _ in range(4)]
    return {"model": model, "train_data": data}
"""


def test_a_container_whose_own_forward_raised_is_named_with_the_layers_it_holds(qtbot, window, tmp_path):
    """It was "layer: 1 (Odd)", a name the table and the network do not show, and nothing was selected."""
    open_file(qtbot, window, write(tmp_path, "container.py", CONTAINER))
    run_steps(qtbot, window, 2)
    with qtbot.waitSignal(window.failed, timeout=LOAD_MS) as failed:
        window.actions_.step.trigger()
    error = failed.args[0]
    assert error.layer == "1" and "layer: 1 (Odd, the module holding 1.fc)" in window.error_panel.text()
    assert window.page.selected_layer() == "1.fc"
