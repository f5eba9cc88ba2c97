"""The GPU path's logic, on a CPU: no hook waits for the device, and each step's one transfer to the host goes
through pinned memory without blocking, followed by one wait."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import bpviz
from bpviz import Config
from bpviz.engine.observe.probe import Probe
from bpviz.engine.observe.update_tracking import UpdateTracker
from bpviz.engine.record import collect

SYNCS = ("cpu", "item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__")


class Mixed(nn.Module):
    """A large conv output (measured in its hook), small ones (measured when the forward returns), a
    functional and an in-place activation, and a bounded one."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 32, 3, padding=1)
        self.bn = nn.BatchNorm2d(32)
        self.fc = nn.Linear(32 * 4 * 4, 16)
        self.act = nn.ReLU(inplace=True)
        self.out = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn(self.conv(x)))
        h = F.adaptive_avg_pool2d(h, 4).flatten(1)
        return self.out(torch.tanh(self.act(self.fc(h))))


def _hook_code() -> set:
    """The code objects of every hook bpviz places: a sync seen with one of them on the stack is inside a hook."""
    grad_hook = next(c for c in Probe._grad_hook.__code__.co_consts if getattr(c, "co_name", None) == "hook")
    functions = (Probe._pre_hook, Probe._post_hook, Probe._call_functional, UpdateTracker._before, UpdateTracker._after)
    return {f.__code__ for f in functions} | {grad_hook}


@pytest.mark.parametrize("level", ["economy", "full"])
def test_no_hook_waits_for_the_device(monkeypatch, level):
    hooks = _hook_code()
    inside: list[str] = []
    for method in SYNCS:
        original = getattr(torch.Tensor, method)

        def spy(self, *args, _name=method, _original=original, **kwargs):
            frame = sys._getframe(1)
            while frame is not None:
                if frame.f_code in hooks:
                    inside.append(f"{_name} in {frame.f_code.co_name}")
                    break
                frame = frame.f_back
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, method, spy)
    torch.manual_seed(0)
    model = Mixed()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 4, (8,))
    with bpviz.watch(model, Config(detail_every=2), level=level) as w:
        for _ in range(4):  # first sight, detailed and plain steps
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss)
        records = list(w.history.records)
    assert inside == []
    assert [r.detailed for r in records] == ([True, False, True, False] if level == "economy" else [True] * 4)
    assert {l.name for l in records[-1].layers} >= {"conv", "bn", "relu()", "fc", "act", "tanh()", "out"}
    assert w.guard.errors == {}


def test_the_steps_transfer_goes_through_pinned_memory_without_blocking_on_a_gpu(monkeypatch):
    """With the device check saying GPU, the transfer allocates pinned host memory, copies into it without
    blocking and waits once, after the copy; the record read from it is the same as the plain path's."""
    events: list[tuple] = []
    empty, copy_ = torch.empty, torch.Tensor.copy_

    def pinned_empty(*args, pin_memory=False, **kwargs):
        events.append(("empty", pin_memory))
        return empty(*args, **kwargs)  # a CPU-only build has no pinned memory: plain memory stands in

    def spy_copy(self, src, non_blocking=False):
        events.append(("copy", non_blocking))
        return copy_(self, src, non_blocking=non_blocking)

    class Stream:
        def synchronize(self) -> None:
            events.append(("wait",))

    def run(gpu: bool) -> list:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
        with bpviz.watch(model) as w:
            for _ in range(2):
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                events.clear()
                if gpu:
                    with monkeypatch.context() as patch:
                        patch.setattr(collect, "on_gpu", lambda tensor: True)
                        patch.setattr(torch, "empty", pinned_empty)
                        patch.setattr(torch.Tensor, "copy_", spy_copy)
                        patch.setattr(torch.cuda, "current_stream", lambda device=None: Stream())
                        record = w.step(loss)
                else:
                    record = w.step(loss)
                if gpu:
                    assert events == [("empty", True), ("copy", True), ("wait",)]
        return [(l.name, l.mean, l.std, l.grad_norm, l.dead_units) for l in record.layers]

    assert run(gpu=True) == run(gpu=False)
