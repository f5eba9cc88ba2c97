"""Mixed precision: gradients reported unscaled, a GradScaler skip named as one (CPU autocast in bfloat16).

Expected values come from a lockstep copy of the model with the test's own
tensor hooks, divided by the scale the test read from its own scaler.
"""

from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import bpviz

SCALE = 2.0**100


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))


def own_grad_norms(model: nn.Sequential, store: list[dict[str, float]], scale_of) -> None:
    """Hook every Linear's output: the norm of the gradient reaching it, divided by the scale in use."""

    def forward_hook(module, args, output, name):
        def grad_hook(grad):
            store[-1][name] = float(grad.double().norm()) / scale_of()

        output.register_hook(grad_hook)

    for name, module in model.named_children():
        if isinstance(module, nn.Linear):
            module.register_forward_hook(lambda m, a, o, name=name: forward_hook(m, a, o, name))


def amp_step(model, opt, state, x, y, boost=1.0):
    """The standard recipe, with the scaler read from `state` so that no variable of this frame holds it."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = F.cross_entropy(model(x).float(), y)
    opt.zero_grad()
    state["scaler"].scale(loss * boost).backward()
    state["scaler"].step(opt)
    state["scaler"].update()
    return loss


@pytest.mark.parametrize("explicit", [False, True])
def test_gradients_are_reported_unscaled_and_a_skipped_step_is_a_skip(explicit):
    model = mlp()
    ref = copy.deepcopy(model)
    opts = [torch.optim.SGD(m.parameters(), lr=0.1) for m in (model, ref)]
    scalers = [torch.amp.GradScaler("cpu", init_scale=SCALE) for _ in range(2)]
    expected: list[dict[str, float]] = []
    ref_scale = [SCALE]
    own_grad_norms(ref, expected, lambda: ref_scale[0])
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 8, generator=g), torch.randint(0, 3, (32,), generator=g)
    holder = {"scaler": scalers.pop(0)}  # not a variable of this frame: found only when given to watch()
    ref_holder = {"scaler": scalers[0]}
    records, weights_before = [], []
    with bpviz.watch(model, scaler=holder["scaler"] if explicit else None) as w:
        if not explicit:
            scaler = holder["scaler"]  # noqa: F841 (a local of the loop calling the model, as in the usual recipe)
        for step in range(4):
            boost = 1e30 if step == 2 else 1.0  # the scaled loss of step 2 overflows: GradScaler skips it
            expected.append({})
            ref_scale[0] = scalers[0].get_scale()
            weights_before.append(model[0].weight.detach().clone())
            amp_step(ref, opts[1], ref_holder, x, y, boost)
            loss = amp_step(model, opts[0], holder, x, y, boost)
            records.append(w.step(loss))
    for step in (0, 1, 3):
        for name, norm in expected[step].items():
            assert records[step].layer(name).grad_norm == pytest.approx(norm, rel=1e-5)
        assert not records[step].grad_scaler_skipped
    assert [r.grad_scale for r in records] == [SCALE, SCALE, SCALE, SCALE / 2]
    assert records[2].grad_scaler_skipped
    assert torch.equal(weights_before[2], weights_before[3])  # the skip left the weights alone
    found = [(f.kind, f.severity, f.step) for f in w.findings]
    assert found == [("grad_scaler_skip", "info", 2)]
    assert f"scale {SCALE:g}" in w.findings[0].message


class Trainer:
    """Keeps its scaler as an attribute, as training frameworks do: no variable of any frame is a GradScaler.

    `deep`: one level further down (`self.precision.scaler`, as a framework's precision plugin holds it).
    """

    def __init__(self, model: nn.Module, amp: bool, deep: bool = False) -> None:
        self.model, self.amp = model, amp
        self.opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16, enabled=amp)
        if deep:
            self.precision = SimpleNamespace(scaler=scaler)
        else:
            self.scaler = scaler

    @property
    def the_scaler(self) -> torch.amp.GradScaler:
        return self.precision.scaler if hasattr(self, "precision") else self.scaler

    def step(self, x: torch.Tensor, y: torch.Tensor, boost: float = 1.0) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.float16, enabled=self.amp):
            loss = F.cross_entropy(self.model(x).float(), y)
        self.opt.zero_grad()
        self.the_scaler.scale(loss * boost).backward()
        self.the_scaler.step(self.opt)
        self.the_scaler.update()
        return loss


@pytest.mark.parametrize("deep", [False, True])
def test_fp16_output_and_parameter_gradients_match_an_fp32_run_wherever_the_scaler_is_kept(deep):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 3))
    ref = copy.deepcopy(model)
    expected: list[dict[str, float]] = []
    own_grad_norms(ref, expected, lambda: 1.0)  # the fp32 copy: no scaling at all
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(128, 8, generator=g), torch.randint(0, 3, (128,), generator=g)
    trainer, ref_trainer = Trainer(model, amp=True, deep=deep), Trainer(ref, amp=False)
    records, ref_params = [], []
    with bpviz.watch(model, level="full") as w:
        for _ in range(4):
            expected.append({})
            ref_trainer.step(x, y)
            ref_params.append({n: float(p.grad.double().norm()) for n, p in ref.named_parameters()})
            records.append(w.step(trainer.step(x, y)))
    assert [r.grad_scale for r in records] == [2.0**16] * 4
    for step, record in enumerate(records):  # deep: step 0 too, whose backward ran before the scaler was found
        for name, norm in expected[step].items():
            assert record.layer(name).grad_norm == pytest.approx(norm, rel=2e-2), (step, name)
        for param in record.params:
            assert param.grad_norm == pytest.approx(ref_params[step][param.name], rel=2e-2), (step, param.name)
        assert not record.grad_scaler_skipped
    for record in records[1:] if deep else records:  # histograms of the unscaled gradients
        histogram = record.layer("0").grad_histogram
        centre = float((histogram.counts * range(len(histogram.counts))).sum() / histogram.counts.sum())
        bin_width = (histogram.hi - histogram.lo) / len(histogram.counts)
        log10_rms = math.log10(expected[record.step]["0"] / math.sqrt(128 * 64))
        assert histogram.lo + (centre + 0.5) * bin_width == pytest.approx(log10_rms, abs=0.75)
    if deep:  # found at its step(optimizer): step 0's histogram was taken scaled in the hook, so it is left out
        assert records[0].layer("0").grad_histogram is None
    assert w.findings == []


def test_a_first_step_skipped_with_the_scaler_kept_on_the_trainer_is_a_skip_not_a_nan():
    model = mlp()
    trainer = Trainer(model, amp=True)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 8, generator=g), torch.randint(0, 3, (32,), generator=g)
    with bpviz.watch(model) as w:
        records = [w.step(trainer.step(x, y, boost=1e30 if step == 0 else 1.0)) for step in range(3)]
    assert [r.grad_scaler_skipped for r in records] == [True, False, False]
    assert [r.grad_scale for r in records] == [2.0**16, 2.0**15, 2.0**15]
    assert [(f.kind, f.step) for f in w.findings] == [("grad_scaler_skip", 0)]


def test_channels_last_weights_have_their_true_update_and_weight_norms():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 64, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, 3),
    ).to(memory_format=torch.channels_last)
    assert not model[2].weight.is_contiguous()  # 4608 values: estimated from a slice
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(4, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 3, (4,))
    with bpviz.watch(model) as w:
        for _ in range(2):
            before = {n: p.detach().clone() for n, p in model.named_parameters()}
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            record = w.step(loss)
    for layer, rel in (("0", 1e-5), ("2", 0.1)):  # a small weight exactly, a large one from its slice
        params = [(n, p) for n, p in model.named_parameters() if n.startswith(f"{layer}.")]
        change = sum(float((p - before[n]).pow(2).sum()) for n, p in params) ** 0.5
        norm = sum(float(p.pow(2).sum()) for _, p in params) ** 0.5
        assert record.layer(layer).update_ratio == pytest.approx(change / norm, rel=rel)
