"""Hooks are guests with bounded appetite: none left behind, none added twice, no measurement kept without bound.

Counted, never timed: tensor hooks through `tensor._backward_hooks`, kept measurements through the probe's
pending step, each against the number the test computes itself.
"""

from __future__ import annotations

import gc
import math
import weakref

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import bpviz
from bpviz.engine.config import Config
from bpviz.engine.observe.stats import sample_stride


class Offset(nn.Module):
    """Returns its own Parameter: the same tensor object every step, which outlives every graph."""

    def __init__(self) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.randn(8))

    def forward(self) -> torch.Tensor:
        return self.p


class WithOffset(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 8)
        self.offset = Offset()
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.fc(x) + self.offset()))


def layer_of(record, name: str):
    return next(layer for layer in record.layers if layer.name == name)


def hooks_on(tensor: torch.Tensor) -> int:
    return len(tensor._backward_hooks or {})


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(16, 4, generator=g), torch.randint(0, 3, (16,), generator=g)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x, y) -> torch.Tensor:
    optimizer.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return loss


def test_a_returned_parameter_gets_one_gradient_hook_per_step_and_none_after_detach():
    torch.manual_seed(0)
    model = WithOffset()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    p = model.offset.p
    with bpviz.watch(model) as w:
        for step in range(30):
            optimizer.zero_grad()
            loss = F.cross_entropy(model(batch(step)[0]), batch(step)[1])
            assert hooks_on(p) == 1  # this step's, none left from earlier steps
            loss.backward()
            expected = float(torch.linalg.vector_norm(p.grad))
            optimizer.step()
            record = w.step(loss)
            assert hooks_on(p) == 0
            # one hook, so the gradient is counted once (k hooks would give sqrt(k) times the norm)
            assert layer_of(record, "offset").grad_norm == pytest.approx(expected, rel=1e-6)
        model(batch()[0])  # a forward after the last step hooks again, until detach
        assert hooks_on(p) == 1
    assert hooks_on(p) == 0
    train_step(model, optimizer, *batch())  # plain training afterwards reaches no bpviz hook
    assert hooks_on(p) == 0 and len(w.probe.pending.grads) == 0


def test_a_parameter_returned_by_several_forwards_of_one_step_is_hooked_once():
    model = WithOffset()
    with bpviz.watch(model) as w:
        for micro in range(4):  # gradient accumulation: four forwards, one step
            F.cross_entropy(model(batch(micro)[0]), batch(micro)[1]).backward()
        assert hooks_on(model.offset.p) == 1
        assert [g.layer for g in w.probe.pending.grads].count("offset") == 4  # one per backward, not 4+3+2+1
        w.step()


def test_forwards_without_step_keep_a_bounded_counted_number_of_calls():
    limit = 5
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    x = batch()[0].requires_grad_()
    inputs = []
    with bpviz.watch(model, Config(calls_per_layer_step=limit)) as w:
        for _ in range(200):  # saliency-style passes with grad enabled, never a step
            model(x).sum().backward()
            fresh = batch()[0].requires_grad_()  # an inference pass without backward: its graph is garbage after
            inputs.append(weakref.ref(fresh))
            model(fresh)
        gc.collect()
        assert sum(ref() is not None for ref in inputs) <= 1  # nothing keeps those forwards' graphs alive
        pending = w.probe.pending
        assert len(pending.calls) == 3 * limit
        assert sorted({c.layer.name for c in pending.calls}) == ["0", "1", "2"]
        assert len(pending.grads) == 3 * 3  # of the 5 forwards measured, the 1st, 3rd and 5th ran a backward
        assert len(pending.forwards) == limit
        dropped = {message: count for message, count in w.guard.errors.items() if "more than" in message}
        why = f"called more than {limit} times in one step (forwards without w.step()?); the rest was not measured"
        assert dropped == {f"{name}: {why}": 400 - limit for name in ("0", "1", "2")}
        record = w.step()
        assert [layer.name for layer in record.layers] == ["0", "1", "2"]
        model(x)  # the next step starts counting afresh
        assert len(w.probe.pending.calls) == 3


def test_a_forward_that_raised_and_was_caught_leaves_nothing_in_the_next_record():
    class FailsOnce(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2, self.fc3 = nn.Linear(4, 6), nn.Linear(6, 6), nn.Linear(6, 3)
            self.fail = False

        def forward(self, x):
            x = torch.relu(self.fc2(torch.relu(self.fc1(x))))
            if self.fail:
                raise RuntimeError("bad batch")
            return self.fc3(x)

    model = FailsOnce()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with bpviz.watch(model) as w:
        train_step(model, optimizer, *batch(0))
        w.step()
        model.fail = True
        with pytest.raises(RuntimeError, match="bad batch"):
            model(batch(1)[0])  # the user catches it and moves on, as a README-style loop would
        model.fail = False
        assert w.probe.pending.calls == [] and w.probe.pending.forwards == []
        loss = train_step(model, optimizer, *batch(2))
        pending = w.probe.pending
        assert [c.layer.name for c in pending.calls] == ["fc1", "relu()", "fc2", "relu()#2", "fc3"]
        assert len(pending.forwards) == 1
        record = w.step(loss)
        assert len(record.layers) == 5


def test_a_wrapped_functional_relu_keeps_its_layer_and_its_finding(monkeypatch):
    original = F.relu
    calls = []

    def logged_relu(x, inplace=False):  # no functools.wraps: nothing says what it wraps
        calls.append(1)
        return original(x, inplace=inplace)

    monkeypatch.setattr(F, "relu", logged_relu)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(4, 8), nn.Linear(8, 3)
            nn.init.constant_(self.fc1.bias, -100.0)  # every unit dead from the start

        def forward(self, x):
            return self.fc2(F.relu(self.fc1(x)))

    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with bpviz.watch(model) as w:
        for step in range(6):
            w.step(train_step(model, optimizer, *batch(step)))
    record = w.history.latest
    layer = layer_of(record, "logged_relu()")
    assert (layer.family, layer.units, layer.dead_units) == ("relu", 8, 8)
    assert any(f.kind == "dead_relu" and f.layer == "logged_relu()" for f in w.findings)
    assert calls  # the user's wrapper still ran
    assert math.isfinite(record.loss)


def _held(calls) -> list[tuple[str, int]]:
    """(layer, values) of every tensor bpviz's stashes hold for these calls, whatever field holds it."""
    return sorted(
        (c.layer if isinstance(c.layer, str) else c.layer.name, value.numel())
        for c in calls
        if c.stash is not None
        for value in vars(c.stash).values()
        if isinstance(value, torch.Tensor)
    )


def _wide() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """Hidden outputs and their gradients of 64 x 4096 floats (1 MiB): past the size measured with the others
    when the pass ends, so each is measured in its hook, and at first sight only checked later for in-place
    changes."""
    model = nn.Sequential(nn.Linear(16, 4096), nn.Tanh(), nn.Linear(4096, 4096), nn.Tanh(), nn.Linear(4096, 10))
    return model, torch.randn(64, 16), torch.randint(0, 10, (64,))


def test_an_output_measured_in_its_hook_is_not_held_to_the_end_of_the_forward():
    model, x, y = _wide()
    held = []
    with bpviz.watch(model) as w:
        model[4].register_forward_pre_hook(lambda module, args: held.append(_held(w.probe.pending.calls)))
        for _ in range(2):  # the first step only checks whether each output changes in place after its hook
            F.cross_entropy(model(x), y).backward()
            w.step()
    sampled = math.ceil(64 * 4096 / sample_stride((64, 4096), Config().histogram_sample))  # the strided sample
    samples = [(name, sampled) for name in ("0", "1", "2", "3")]  # what the histograms are taken from
    assert held == [samples, samples]


def test_a_gradient_measured_in_its_hook_is_not_held_to_the_end_of_the_backward():
    model, x, y = _wide()
    held = []
    with bpviz.watch(model) as w:
        # the first layer's weight: every output gradient has arrived
        model[0].weight.register_hook(lambda grad: held.append(_held(w.probe.pending.stashed_grads)))
        for _ in range(2):  # the second step leaves the head's small gradient to the end of the backward
            F.cross_entropy(model(x), y).backward()
            w.step()
    assert held == [[], [("4", 64 * 10)]]


class ChangedAfterItsHook(nn.Module):
    """A large Linear output changed in place after its hook: by an in-place ReLU module, or by the code
    between layers just before the forward returns a reduction of it (nothing holds it then)."""

    def __init__(self, by_code: bool) -> None:
        super().__init__()
        self.fc, self.act, self.by_code = nn.Linear(16, 4096), nn.ReLU(inplace=True), by_code

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        return F.log_softmax(h.div_(2.0), dim=1) if self.by_code else self.act(h)


@pytest.mark.parametrize("by_code", [False, True], ids=["in-place ReLU", "code before the return"])
def test_a_large_output_changed_after_its_hook_is_seen_changed_in_its_first_step(by_code):
    model = ChangedAfterItsHook(by_code)
    with bpviz.watch(model) as w:
        model(torch.randn(64, 16)).mean().backward()  # 64 x 4096 floats: held weakly at first sight
        w.step()
        assert ("fc", "forward") in w.catalog.changed_in_place
    assert w.guard.errors == {}


def test_a_small_residual_gradient_is_not_taken_for_changed_in_place():
    # autograd adds the skip branch's gradient into the block's incoming one in place when nothing else holds
    # it; a small gradient, stashed to the end of the backward on later steps, is held at first sight too
    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = nn.ModuleList(nn.Linear(16, 16) for _ in range(3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for block in self.blocks:
                x = x + block(x)
            return x

    model = Residual()
    with bpviz.watch(model) as w:
        for _ in range(2):
            model(torch.randn(8, 16)).pow(2).mean().backward()
            w.step()
        assert w.catalog.changed_in_place == set()
        assert {key for key in w.catalog.checked_in_place if key[1] == "backward"} == {
            (f"blocks.{i}", "backward") for i in range(3)
        }
