"""Stepping into one training step: live pauses in the hooks, in execution order, abortable."""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import pytest
import torch
from torch import nn

from bpviz.engine.load.experiment import Experiment
from bpviz.engine.session.step_gate import INTO, OUT, OVER, Gate, StepAborted
from bpviz.engine.session.stepper import Stepper


def experiment() -> Experiment:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(inplace=True), nn.Linear(8, 3))
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(16, 4, generator=g), torch.randint(0, 3, (16,), generator=g))]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return Experiment(Path("exp.py"), model, data, nn.CrossEntropyLoss(), optimizer)


class Driver:
    """Runs one gated step in a thread and hands each pause to the test, in order."""

    def __init__(self, stepper: Stepper, mode: str = INTO) -> None:
        self.events: queue.Queue = queue.Queue()
        self.gate = Gate(on_pause=self.events.put)
        self.gate.arm(mode)
        self.outcome: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._run, args=(stepper,))
        self.thread.start()

    def _run(self, stepper: Stepper) -> None:
        try:
            self.outcome.put(stepper.step(self.gate))
        except StepAborted as exc:
            self.outcome.put(exc)

    def next_pause(self):
        return self.events.get(timeout=10)

    def result(self):
        value = self.outcome.get(timeout=10)
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()
        return value


def weights(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def test_step_into_visits_forward_then_loss_then_backward_then_update_in_execution_order():
    exp = experiment()
    stepper = Stepper(exp)
    before = weights(exp.model)
    driver = Driver(stepper)
    visited = []
    unchanged_until_update = []
    while True:
        try:
            event = driver.next_pause()
        except queue.Empty:
            break
        visited.append((event.phase, event.layer))
        same = all(torch.equal(a, b) for a, b in zip(before, weights(exp.model)))
        unchanged_until_update.append((event.phase, same))
        driver.gate.resume(INTO)
        if event.phase == "update":
            break
    record = driver.result()
    forward = [layer for phase, layer in visited if phase == "forward"]
    backward = [layer for phase, layer in visited if phase == "backward"]
    assert forward == [l.name for l in record.layers] == ["0", "1", "2", "3"]
    assert backward == record.backward_order == ["3", "2", "1", "0"]
    assert [phase for phase, _ in visited] == ["forward"] * 4 + ["loss"] + ["backward"] * 4 + ["update"]
    assert all(same for phase, same in unchanged_until_update if phase != "update")
    assert unchanged_until_update[-1] == ("update", False)
    stepper.close()


def test_pause_shows_the_live_tensor():
    exp = experiment()
    seen = {}  # registered before the stepper's hooks, so it runs before the pause
    exp.model[2].register_forward_hook(lambda m, i, o: seen.__setitem__("relu", o.detach().clone()))
    stepper = Stepper(exp)
    driver = Driver(stepper)
    for _ in range(3):
        event = driver.next_pause()
        driver.gate.resume(INTO) if event.layer != "2" else None
    assert event.layer == "2" and event.phase == "forward"
    assert sorted(event.values.tolist()) == sorted(seen["relu"].reshape(-1).tolist())
    assert event.norm == pytest.approx(float(seen["relu"].norm()))
    driver.gate.resume(OVER)
    driver.result()
    stepper.close()


def test_step_out_finishes_the_current_phase():
    stepper = Stepper(experiment())
    driver = Driver(stepper)
    assert driver.next_pause().phase == "forward"
    driver.gate.resume(OUT)
    assert driver.next_pause().phase == "loss"
    driver.gate.resume(OUT)
    event = driver.next_pause()
    assert (event.phase, event.layer) == ("backward", "3")
    driver.gate.resume(OUT)
    update = driver.next_pause()
    assert update.phase == "update" and set(update.update_ratios) == {
        "0.weight",
        "0.bias",
        "1.weight",
        "1.bias",
        "3.weight",
        "3.bias",
    }
    driver.gate.resume(OUT)
    assert driver.result().step == 0
    stepper.close()


@pytest.mark.parametrize("stop_in", ["forward", "loss", "backward"])
def test_stopping_mid_step_leaves_the_model_and_history_as_before(stop_in):
    exp = experiment()
    stepper = Stepper(exp)
    stepper.step()
    before = weights(exp.model)
    buffers = [b.clone() for b in exp.model.buffers()]
    driver = Driver(stepper)
    event = driver.next_pause()
    while event.phase != stop_in:
        driver.gate.resume(INTO)
        event = driver.next_pause()
    driver.gate.abort()
    assert isinstance(driver.result(), StepAborted)
    assert all(torch.equal(a, b) for a, b in zip(before, weights(exp.model)))
    assert all(torch.equal(a, b) for a, b in zip(buffers, exp.model.buffers()))
    assert stepper.step_index == 1 and len(stepper.history) == 1
    assert not torch._C._is_torch_function_mode_enabled()
    record = stepper.step()  # and the next step runs normally, without pausing
    assert record.step == 1 and [l.name for l in record.layers] == ["0", "1", "2", "3"]
    stepper.close()


def test_stopping_at_the_update_pause_completes_the_step():
    exp = experiment()
    stepper = Stepper(exp)
    before = weights(exp.model)
    driver = Driver(stepper, OUT)
    event = driver.next_pause()
    while event.phase != "update":
        driver.gate.resume(OUT)
        event = driver.next_pause()
    driver.gate.abort()
    record = driver.result()
    assert record.step == 0 and stepper.step_index == 1 and len(stepper.history) == 1
    assert not all(torch.equal(a, b) for a, b in zip(before, weights(exp.model)))
    stepper.close()
