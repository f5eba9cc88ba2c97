"""Cost levels: the economy level reports what the findings rely on exactly as the full level does,
detailed steps follow the level or the budget, and bpviz's own cost is on every record."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import bpviz
from bpviz import Config
from bpviz.engine.load.experiment import load_experiment
from bpviz.engine.load.samples import SAMPLES_DIR
from bpviz.engine.observe.levels import MAX_SPACING, DetailSchedule
from bpviz.engine.observe.stats import sample_stride
from bpviz.engine.session.stepper import Stepper
from tests.engine.models import train

SAMPLES = sorted(p for p in SAMPLES_DIR.glob("*.py") if not p.name.startswith("_"))


def _essentials(stepper: Stepper, steps: int) -> tuple[list, list]:
    """Per step: NaN/Inf origins and dead units per layer; then the findings as the report has them."""
    per_step = []
    for _ in range(steps):
        record = stepper.step()
        dead = {layer.name: (layer.units, layer.dead_units) for layer in record.layers if layer.units is not None}
        per_step.append((record.step, record.nonfinite_origin, record.nonfinite_grad_origin, dead))
    stepper.validate()  # as `bpviz check` does: where forgetting model.eval() shows
    findings = stepper.report()["findings"]
    stepper.close()
    return per_step, findings


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.stem)
def test_economy_finds_what_full_finds_on_every_sample(sample):
    runs = {}
    for level in ("economy", "full"):
        stepper = Stepper(load_experiment(sample, trust=True, seed=0), level=level)
        runs[level] = _essentials(stepper, 20)
    assert runs["economy"] == runs["full"]
    if sample.stem != "healthy_resnet" and not sample.stem.endswith("_fixed"):  # the lessons have an error to find
        assert any(f["severity"] == "error" for f in runs["full"][1])


class DiesAtStep30(nn.Module):
    """Linear(8, 16) -> ReLU -> Linear(16, 3); before step 30 its bias drives 6 units far below zero."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 16)
        self.act = nn.ReLU()
        self.out = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.fc(x)))


def _run_to_death(level: str, steps: int = 50):
    torch.manual_seed(0)
    model = DiesAtStep30()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(32, 8), torch.randint(0, 3, (32,))
    fired_by_step = []
    with bpviz.watch(model, level=level) as w:
        records = []
        for step in range(steps):
            if step == 30:
                with torch.no_grad():
                    model.fc.bias[:6] = -1e3
            fired_by_step.append((model.fc(x) > 0).any(dim=0).detach().numpy())  # independent oracle
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            records.append(w.step(loss))
        findings = [(f.kind, f.layer, f.step, f.severity) for f in w.findings]
    return records, findings, fired_by_step


def test_a_50_step_run_where_units_die_at_step_30_counts_them_alike_at_both_levels():
    economy, economy_findings, fired = _run_to_death("economy")
    full, full_findings, _ = _run_to_death("full")
    window = Config().dead_window
    for step, (a, b) in enumerate(zip(economy, full)):
        recent = np.vstack(fired[max(0, step - window + 1) : step + 1])
        expected = int((~recent.any(axis=0)).sum())  # silent on every sample of the last `window` steps
        assert a.layer("act").dead_units == b.layer("act").dead_units == expected, step
    assert economy[29].layer("act").dead_units == 0
    assert economy[-1].layer("act").dead_units == 6
    assert economy_findings == full_findings
    assert [f[:3] for f in full_findings if f[0] == "dead_relu"] == [("dead_relu", "act", 32)]


def test_detailed_steps_follow_the_level():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    seen = {}
    for level in ("economy", "full"):
        with bpviz.watch(model, Config(detail_every=4), level=level) as w:
            records = []
            for _ in range(9):
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                records.append(w.step(loss))
        seen[level] = [r.detailed for r in records]
        for record in records:  # a plain step has no histograms or activity shares; a detailed one has both
            assert (record.layer("0").histogram is not None) == record.detailed
            assert (record.layer("1").unit_activity is not None) == record.detailed
            assert record.layer("1").dead_units is not None  # on every step
    assert seen["economy"] == [True, False, False, False, True, False, False, False, True]
    assert seen["full"] == [True] * 9


def test_every_record_carries_what_watching_cost_and_the_report_sums_it():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    with bpviz.watch(model) as w:
        records = []
        for _ in range(5):
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            records.append(w.step(loss))
        cost = w.report()["cost"]
    for record in records:
        assert 0 < record.overhead_s < record.step_s
    assert cost["level"] == "economy" and cost["steps"] == 5 and cost["detailed_steps"] == 1
    assert cost["share"] == pytest.approx(sum(r.overhead_s for r in records) / sum(r.step_s for r in records))


def test_an_unknown_level_or_budget_is_refused_with_the_choices():
    model = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="economy, full"):
        bpviz.watch(model, level="cheap")
    with pytest.raises(ValueError, match="between 0 and 1"):
        bpviz.watch(model, budget=5)


class ExpensiveDetails(nn.Module):
    """A step dominated by large matmuls over few values, whose detailed statistics are made costly on purpose."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2048, 2048)
        self.act = nn.ReLU()
        self.out = nn.Linear(2048, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.fc(x)))


def test_a_budget_spaces_the_detailed_steps_by_the_costs_bpviz_measured_on_the_steps_before():
    """Which steps are detailed under a budget follows from the costs recorded on the steps before it: a fresh
    schedule fed the recorded costs decides the same steps. (The share the spacing keeps is checked on known
    costs below; the share a real run reaches is a wall-clock matter for benchmarks/overhead.py.)"""
    torch.manual_seed(0)
    model = ExpensiveDetails()
    x, y = torch.randn(64, 2048), torch.randint(0, 4, (64,))
    config = Config(histogram_bins=2_000_000, detail_every=1, budget=0.5)  # without the budget: every step detailed
    with bpviz.watch(model, config) as w:
        records = train(model, w, 30, x, y)
    replay = DetailSchedule(config)
    for record in records:
        assert record.detailed == replay.next_is_detailed(), record.step
        assert record.overhead_s is not None and record.step_s is not None
        replay.observe(record.detailed, record.overhead_s, record.step_s)
    assert records[0].detailed  # the first step is measured in full, to learn its cost
    assert all(r.layer("act").dead_units is not None for r in records)  # the always-on checks stayed


def test_the_budget_spacing_keeps_the_share_of_known_costs_under_it():
    schedule = DetailSchedule(Config(budget=0.05))
    schedule.observe(True, overhead_s=0.030, step_s=0.130)  # a detailed step: 30 ms of bpviz
    schedule.observe(False, overhead_s=0.002, step_s=0.102)  # a plain one: 2 ms
    k = schedule.spacing()
    share = (0.030 + (k - 1) * 0.002) / (0.130 + (k - 1) * 0.102)
    assert share <= 0.05 and k > 1
    shorter = k - 1
    assert (0.030 + (shorter - 1) * 0.002) / (0.130 + (shorter - 1) * 0.102) > 0.05 * 0.8  # not spaced more than needed
    schedule.observe(False, overhead_s=0.2, step_s=0.3)  # the always-on part alone exceeds the budget
    for _ in range(5):
        schedule.observe(False, overhead_s=0.2, step_s=0.3)
    assert schedule.spacing() == MAX_SPACING


def test_bpviz_check_takes_the_level_and_reports_the_cost(tmp_path, capsys):
    from bpviz.cli import main

    report = tmp_path / "report.json"
    sample = str(SAMPLES_DIR / "dying_relu.py")
    assert main(["check", sample, "--steps", "3", "--level", "full", "--json", str(report)]) == 1
    cost = json.loads(report.read_text())["cost"]
    assert (cost["level"], cost["steps"], cost["detailed_steps"]) == ("full", 3, 3)
    line = f"bpviz: {100 * cost['share']:.1f}% of step time (full level, 3 of 3 steps detailed)"
    assert line in capsys.readouterr().out


def _simulate(schedule: DetailSchedule, steps: int, first: float, detailed: float, plain: float, train: float):
    """Feed the schedule known costs: bpviz's seconds on the first (forced), a detailed and a plain step,
    around `train` seconds of training; the run's share after each step and which steps were detailed."""
    spent = wall = 0.0
    shares, chosen = [], []
    for step in range(steps):
        is_detailed = schedule.next_is_detailed()
        cost = first if step == 0 else detailed if is_detailed else plain
        spent, wall = spent + cost, wall + train + cost
        schedule.observe(is_detailed, overhead_s=cost, step_s=train + cost)
        shares.append(spent / wall)
        chosen.append(is_detailed)
    return shares, chosen


def test_the_budget_counts_what_the_run_already_spent_including_the_first_detailed_step():
    budget = 0.05
    # Every detailed step costs half a step's training; the first, forced one takes the run to a third.
    shares, chosen = _simulate(DetailSchedule(Config(budget=budget)), 400, 0.05, 0.05, 0.001, 0.1)
    assert chosen[0] and shares[0] > 0.3
    later = [step for step, is_detailed in enumerate(chosen) if is_detailed and step > 0]
    for step in later:
        assert shares[step] <= budget, step  # no later detailed step takes the run's share above the budget
    # spaced from the estimates alone (aiming at 80% of the budget) the second came at step 17, at 6%
    assert later[0] > 17
    assert len(later) >= 20 and shares[-1] > 0.8 * budget * 0.8  # and they keep coming: the budget is used


def test_without_a_budget_the_spacing_is_the_levels_whatever_the_costs():
    _, economy = _simulate(DetailSchedule(Config(detail_every=4)), 12, 0.4, 0.02, 0.001, 0.1)
    assert economy == [True, False, False, False] * 3
    _, full = _simulate(DetailSchedule(Config(level="full")), 5, 0.4, 0.02, 0.001, 0.1)
    assert full == [True] * 5


@pytest.mark.parametrize("level", ["economy", "full"])
def test_an_output_overwritten_in_place_after_its_hook_is_measured_before_it_changes(level):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(inplace=True), nn.Linear(8, 3))
    x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with bpviz.watch(model, level=level) as w:
        for _ in range(4):
            expected = model[0](x).detach()  # what the Linear gives, before the ReLU overwrites it
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            linear = w.step(loss).layer("0")
            assert linear.mean == pytest.approx(float(expected.mean()), rel=1e-4, abs=1e-6)
            assert linear.std == pytest.approx(float(expected.std(unbiased=False)), rel=1e-3)
            assert linear.min < 0  # the ReLU's zeros would say 0
        assert w.guard.errors == {}


class _HalveGradInPlace(torch.autograd.Function):
    """Passes values through; its backward halves the incoming gradient in place (as a custom kernel may)."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad.mul_(0.5)


class HalvesGrad(nn.Module):
    def forward(self, x):
        return _HalveGradInPlace.apply(x)


@pytest.mark.parametrize("level", ["economy", "full"])
def test_a_gradient_changed_in_place_after_its_hook_is_measured_before_it_changes(level):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), HalvesGrad(), nn.Linear(8, 3))
    x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with bpviz.watch(model, level=level) as w:
        for _ in range(4):
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            # the gradient reaching HalvesGrad's output, as it arrives: dL/dlogits through the last Linear
            (dlogits,) = torch.autograd.grad(loss, logits, retain_graph=True)
            expected = float((dlogits @ model[2].weight.detach()).norm())
            opt.zero_grad()
            loss.backward()
            opt.step()
            assert w.step(loss).layer("1").grad_norm == pytest.approx(expected, rel=1e-5)
        assert w.guard.errors == {}


class ShiftsItsOutputInPlace(nn.Module):
    """A leaf that changes its output in place inside its own forward, before any hook sees it (version 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(512, 16) / 4)
        self.bias = nn.Parameter(torch.zeros(512))

    def forward(self, x):
        out = F.linear(x, self.weight, self.bias)
        out.add_(1.0)
        return out


def test_a_large_output_changed_before_its_hook_is_measured_without_a_false_in_place_note():
    torch.manual_seed(0)
    # 512 x 512 float32 = 1 MB: measured in its hook, a copy of its sample kept for the rest
    model = nn.Sequential(ShiftsItsOutputInPlace(), nn.ReLU(), nn.Linear(512, 3))
    x, y = torch.randn(512, 16), torch.randint(0, 3, (512,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with bpviz.watch(model) as w:
        for _ in range(3):
            expected = (F.linear(x, model[0].weight, model[0].bias) + 1.0).detach()
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            shifted = w.step(loss).layer("0")
            assert shifted.mean == pytest.approx(float(expected.mean()), rel=1e-4)
        assert w.guard.errors == {}


class _Injected(nn.Module):
    """Puts one value into its input at a position the strided sample skips, then applies `act`."""

    def __init__(self, value: float, act: nn.Module) -> None:
        super().__init__()
        self.value, self.lin, self.act = value, nn.Linear(64, 64), act

    def forward(self, x):
        out = self.lin(x)
        out = out + torch.zeros_like(out).index_put_((torch.tensor([3]), torch.tensor([5])), torch.tensor(self.value))
        return self.act(out)


@pytest.mark.parametrize(
    ("value", "act", "act_nonfinite"),
    [
        (math.nan, nn.ReLU(), True),  # NaN stays NaN
        (math.inf, nn.ReLU(), True),  # +inf stays +inf
        (-math.inf, nn.ReLU(), False),  # -inf becomes 0: the ReLU's output is finite, its input is not
        (math.inf, nn.ReLU6(), False),  # +inf is clipped to 6
    ],
)
def test_economy_tells_nan_and_inf_of_a_relu_from_its_input_maxima_exactly_as_full(value, act, act_nonfinite):
    torch.manual_seed(0)
    x = torch.randn(4096, 64)  # 262144 values: the 4096-value sample takes one in 64 and misses (3, 5)
    assert (3 * 64 + 5) % sample_stride(tuple(x.shape), 4096) != 0
    results = {}
    for level in ("economy", "full"):
        model = _Injected(value, act)
        with bpviz.watch(model, level=level) as w:
            out = model(x)
            out.nan_to_num(0.0, 0.0, 0.0).sum().backward()
            record = w.step()
        results[level] = (record.layer("act").nonfinite, record.nonfinite_origin)
    assert results["economy"] == results["full"]
    assert results["full"][0] is act_nonfinite


class _ModeProbe(nn.Module):
    """Notes, each forward, whether a torch-function mode is on while the model runs."""

    def __init__(self, functional: bool) -> None:
        super().__init__()
        self.functional, self.lin, self.act = functional, nn.Linear(8, 8), nn.ReLU()
        self.mode_on: list[bool] = []

    def forward(self, x):
        self.mode_on.append(torch._C._is_torch_function_mode_enabled())
        out = self.lin(x)
        return torch.tanh(out) if self.functional else self.act(out)


@pytest.mark.parametrize("functional", [False, True])
def test_the_function_mode_runs_on_plain_economy_steps_only_for_a_model_calling_functional_activations(functional):
    torch.manual_seed(0)
    model = _ModeProbe(functional)
    x = torch.randn(4, 8)
    with bpviz.watch(model, Config(detail_every=4)) as w:
        records = []
        for _ in range(8):
            model(x).sum().backward()
            records.append(w.step())
    detailed = [r.detailed for r in records]
    assert detailed == [True, False, False, False, True, False, False, False]
    # activation modules alone: the mode only on detailed steps; a functional activation: on every step
    assert model.mode_on == (detailed if not functional else [True] * 8)
    names = {"tanh()"} if functional else {"act"}
    assert all(names <= {layer.name for layer in r.layers} for r in records)


class _GradInjected(nn.Module):
    """Identity forward whose backward puts `value` into one gradient entry the 4096-value sample skips."""

    class _Inject(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, value):
            ctx.value = value
            return x.view_as(x)

        @staticmethod
        def backward(ctx, grad):
            grad = grad.clone()
            if ctx.value is not None:
                grad[3, 5] = ctx.value
            return grad, None

    def __init__(self, value: float | None) -> None:
        super().__init__()
        self.value, self.lin, self.head = value, nn.Linear(64, 64), nn.Linear(64, 4)

    def forward(self, x):
        return self.head(self._Inject.apply(self.lin(x), self.value))


@pytest.mark.parametrize("value", [None, math.nan, math.inf])
def test_economy_estimates_output_gradient_norms_and_keeps_nan_inf_and_parameter_norms_exact(value):
    torch.manual_seed(0)
    x = torch.randn(4096, 64)
    seen, records, models = {}, {}, {}
    for level in ("economy", "full"):
        model = models[level] = _GradInjected(value)

        def keep_gradient(_module, _inputs, out, level=level) -> None:  # the true gradient reaching lin's output
            out.register_hook(lambda g: seen.__setitem__(level, g.clone()))

        model.lin.register_forward_hook(keep_gradient)
        with bpviz.watch(model, level=level) as w:
            model(x).square().mean().backward()
            records[level] = w.step()
    for level, record in records.items():
        lin = record.layer("lin")
        assert lin.grad_nonfinite is (value is not None)  # exact at both levels, though the sample skips (3, 5)
        if value is None:
            rel = 1e-5 if level == "full" else 0.05  # economy: from the strided sample
            assert lin.grad_norm == pytest.approx(float(seen[level].norm()), rel=rel)
        weight = next(p for p in record.params if p.name == "head.weight")
        assert weight.grad_norm == pytest.approx(float(models[level].head.weight.grad.norm()), rel=1e-5)
    assert records["economy"].nonfinite_grad_origin == records["full"].nonfinite_grad_origin


@pytest.mark.parametrize("level", ["economy", "full"])
def test_a_gradient_norm_estimated_from_a_sample_says_so(level):
    """At the economy level the norm of a gradient larger than its sample is estimated from the sample: one that
    misses the only nonzero value reads 0.0 and says it was sampled (the window then shows "≈0", not "no
    gradient"). The full level measures it exactly; a gradient its sample holds whole is exact at both."""
    torch.manual_seed(0)
    wide, narrow = nn.Linear(64, 128), nn.Linear(64, 8)  # outputs of 64 x 128 = 8192 and 64 x 8 = 512 values
    x = torch.randn(64, 64)
    stride = sample_stride((64, 128), Config().histogram_sample)
    assert stride > 1  # flat index 1 is outside the sample (every stride-th value from 0)
    watch = bpviz.watch(nn.ModuleDict({"wide": wide, "narrow": narrow}), level=level)
    loss = 3.0 * wide(x).reshape(-1)[1] + narrow(x).sum()  # d(loss)/d(wide output) is 3 at one value, else 0
    loss.backward()
    layers = {layer.name: layer for layer in watch.step(loss).layers}
    watch.detach()
    if level == "economy":
        assert (layers["wide"].grad_norm, layers["wide"].grad_norm_sampled) == (0.0, True)
    else:
        assert (layers["wide"].grad_norm, layers["wide"].grad_norm_sampled) == (pytest.approx(3.0), False)
    assert layers["narrow"].grad_norm == pytest.approx(math.sqrt(64 * 8))  # ones everywhere: exact at both
    assert not layers["narrow"].grad_norm_sampled
