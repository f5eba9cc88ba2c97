"""bpviz.watch as a guest in a user's loop: no trace after detach, one host sync per step, the report."""

from __future__ import annotations

import contextlib
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.optimizer import _global_optimizer_post_hooks, _global_optimizer_pre_hooks

import bpviz
from tests.engine.models import Functional, batch, dead_unit_mlp, train


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_detach_removes_every_hook():
    model = Functional()
    pre, post = len(_global_optimizer_pre_hooks), len(_global_optimizer_post_hooks)
    with bpviz.watch(model) as w:
        assert hook_count(model) == 2 * len(list(model.modules()))
        train(model, w, 1, torch.randn(4, 6), torch.zeros(4, dtype=torch.long))
    assert hook_count(model) == 0
    assert (len(_global_optimizer_pre_hooks), len(_global_optimizer_post_hooks)) == (pre, post)
    assert not torch._C._is_torch_function_mode_enabled()


def train_copy(watched: bool, steps: int = 5):
    """Train the same seeded model with or without bpviz; its parameters afterwards and the watcher (or None)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(inplace=True), nn.Dropout(0.2), nn.Linear(16, 3))
    x, y = batch()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with bpviz.watch(model) if watched else contextlib.nullcontext() as w:
        for _ in range(steps):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if w:
                w.step(loss)
    return [p.detach().clone() for p in model.parameters()], w


def test_training_is_bit_identical_with_and_without_watch():
    for a, b in zip(train_copy(False)[0], train_copy(True)[0]):
        assert torch.equal(a, b)


def test_one_host_transfer_per_step(monkeypatch):
    model = dead_unit_mlp(2)
    x, y = batch()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    calls = []
    for method in ("cpu", "item", "tolist", "numpy", "__bool__", "__float__", "__int__"):
        original = getattr(torch.Tensor, method)

        def spy(self, *args, _name=method, _original=original, **kwargs):
            calls.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, method, spy)
    with bpviz.watch(model) as w:
        for _ in range(3):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            assert calls == []  # nothing synced inside the hooks
            w.step(loss)
            assert calls == ["cpu", "numpy"]  # one transfer, then read as numpy on the host
            calls.clear()


def test_report_is_json_with_the_documented_keys():
    model = dead_unit_mlp(3)
    x, y = batch()
    with bpviz.watch(model) as w:
        train(model, w, 4, x, y)
    report = json.loads(json.dumps(w.report()))
    assert report["version"] == 1 and report["steps"] == 4 and len(report["loss"]) == 4
    assert [l["name"] for l in report["layers"]] == ["0", "1", "2"]
    relu = report["layers"][1]
    assert {"name", "type", "units", "dead_units", "zero_fraction", "grad_norm"} <= set(relu)
    assert (relu["units"], relu["dead_units"]) == (8, 3)
    assert report["layers"][0]["units"] is None
    assert report["findings"][0]["kind"] == "dead_relu"
    assert {"kind", "severity", "layer", "step", "message"} <= set(report["findings"][0])


def test_nan_becomes_null_in_the_report():
    model = nn.Sequential(nn.Linear(4, 3))
    x, y = batch()
    x[:] = float("nan")
    with bpviz.watch(model) as w:
        train(model, w, 1, x, y)
    report = json.loads(json.dumps(w.report(), allow_nan=False))
    assert report["loss"] == [None]


def test_findings_are_objects_with_the_documented_attributes():
    model = dead_unit_mlp(8)
    x, y = batch()
    with bpviz.watch(model) as w:
        train(model, w, 3, x, y)
    finding = w.findings[0]
    assert (finding.kind, finding.severity, finding.layer, finding.step) == ("dead_relu", "error", "1", 2)
    assert finding.message.startswith("8 of 8 units of 1 (100%) are dead")


def test_step_without_loss_and_model_without_optimizer():
    model = dead_unit_mlp(0)
    x, y = batch()
    with bpviz.watch(model) as w:
        F.cross_entropy(model(x), y).backward()
        record = w.step()
    assert record.loss is None
    assert record.layer("0").param_grad_norm > 0 and record.layer("0").update_ratio is None


@pytest.mark.parametrize("steps", [1, 4])
def test_history_keeps_every_loss(steps):
    model = dead_unit_mlp(0)
    x, y = batch()
    with bpviz.watch(model) as w:
        records = train(model, w, steps, x, y)
    assert w.history.losses == [r.loss for r in records]
    assert [r.step for r in w.history.records] == list(range(steps))


def test_unusual_outputs_are_skipped_without_breaking_training():
    torch.manual_seed(0)

    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            out = self.fc(x)
            return out, out.argmax(dim=1), {"half": out.half()}

    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.odd = Odd()
            self.index = nn.Identity()

        def forward(self, x):
            logits, labels, extra = self.odd(x)
            self.index(labels)  # an integer output: not a measurable activation
            return logits + extra["half"].float() * 0

    model = Wrapper()
    x, y = batch()
    with bpviz.watch(model) as w:
        record = train(model, w, 2, x, y)[-1]
    assert [l.name for l in record.layers] == ["odd.fc"]
    assert w.guard.errors == {}


def test_a_failure_when_the_backward_ends_is_noted_and_neither_backward_nor_step_raises(monkeypatch):
    from bpviz.engine.observe import deferred

    def broken(*args, **kwargs):
        raise RuntimeError("cannot settle")

    plain, _ = train_copy(False, steps=3)
    monkeypatch.setattr(deferred, "settle_backward", broken)
    watched, w = train_copy(True, steps=3)
    for a, b in zip(plain, watched):
        assert torch.equal(a, b)
    assert len(w.history.records) == 3
    # once as each backward ends, once as each step is taken
    assert w.guard.errors == {"gradients: RuntimeError: cannot settle": 6}


def test_a_failing_measurement_is_noted_and_training_goes_on_unchanged(monkeypatch):
    from bpviz.engine.observe import deferred
    from bpviz.engine.observe.update_tracking import UpdateTracker

    def broken(*args, **kwargs):
        raise RuntimeError("cannot measure this")

    plain, _ = train_copy(False, steps=3)
    monkeypatch.setattr(deferred, "settle_gradients", broken)
    monkeypatch.setattr(UpdateTracker, "_owned", broken)
    watched, w = train_copy(True, steps=3)
    for a, b in zip(plain, watched):
        assert torch.equal(a, b)
    errors = w.guard.errors
    assert any(e.startswith("0: ") and "cannot measure this" in e for e in errors)  # a gradient hook
    assert any(e.startswith("optimizer step: ") for e in errors)
    assert len(w.history.records) == 3
    assert w.guard.errors[next(e for e in errors if e.startswith("optimizer step: "))] == 6  # before and after
    assert w.report()["unmeasured"] == list(errors)
