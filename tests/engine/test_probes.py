"""What the engine observes per layer: names, counts, statistics, gradients, updates."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import bpviz
from bpviz.engine.config import Config
from tests.engine.models import Functional, batch, dead_unit_mlp, train


@pytest.mark.parametrize("dead", [0, 1, 3, 6])
def test_layer_built_with_k_dead_units_reports_k(dead):
    model = dead_unit_mlp(dead)
    x, y = batch()
    with bpviz.watch(model) as w:
        record = train(model, w, 3, x, y)[-1]
    relu = record.layer("1")
    assert relu.units == 8
    assert relu.dead_units == dead
    assert list(relu.dead_unit_ids) == list(range(dead))
    assert record.layer("0").units is None and record.layer("0").dead_units is None
    assert relu.zero_fraction == pytest.approx(dead / 8)


def test_conv_units_are_channels():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 5, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
    with torch.no_grad():
        model(torch.zeros(1, 3, 8, 8))
        model[0].weight[:2] = 0.0
        model[0].bias[:2] = -1.0
    x = torch.randn(4, 3, 8, 8)
    with bpviz.watch(model) as w:
        record = train(model, w, 3, x, torch.tensor([0, 1, 0, 1]))[-1]
    assert record.layer("1").units == 5
    assert record.layer("1").dead_units == 2


def test_functional_activations_are_layers_counted_once():
    torch.manual_seed(0)
    model = Functional()
    x = torch.randn(8, 6)
    with bpviz.watch(model) as w:
        record = train(model, w, 1, x, torch.zeros(8, dtype=torch.long))[-1]
    names = [l.name for l in record.layers]
    assert names == ["a", "relu()", "b", "relu()#2", "c", "relu_()", "sigmoid()", "act"]
    assert record.layer("act").family == "relu"  # nn.ReLU's inner F.relu is not a second layer
    assert record.layer("sigmoid()").saturated_fraction is not None
    assert all(l.grad_norm is not None for l in record.layers)


def test_module_called_twice_gives_two_entries_and_in_place_relu_works():
    torch.manual_seed(0)

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.act = nn.ReLU(inplace=True)

        def forward(self, x):
            return self.fc(self.act(self.fc(x)))

    model = Twice()
    x, y = batch(classes=4)
    with bpviz.watch(model) as w:
        record = train(model, w, 2, x, y)[-1]
    assert [l.name for l in record.layers] == ["fc", "act", "fc#2"]
    assert record.layer("fc").zero_fraction == 0.0
    assert record.layer("act").zero_fraction > 0.0  # the in-place output, measured after the activation
    assert record.layer("fc").param_grad_norm is not None
    assert record.layer("fc#2").param_grad_norm is None  # parameters belong to the first call site


def act(t: torch.Tensor) -> torch.Tensor:
    """A user's helper applying the activation of every layer."""
    return torch.relu(t)


def test_one_helper_called_after_two_layers_gives_two_layers_and_finds_the_dead_one():
    """The helper's line is the innermost place for both calls: only the lines calling it tell them apart, so one
    dead layer does not vanish into a merged one half of whose units are alive."""

    class Helped(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.fc3 = nn.Linear(4, 16), nn.Linear(16, 16), nn.Linear(16, 3)
            with torch.no_grad():
                self.fc2.bias.fill_(-10.0)  # every unit of the second activation is dead

        def forward(self, x):
            h = act(self.fc1(x))
            h = act(self.fc2(h))
            return self.fc3(h)

    torch.manual_seed(0)
    model = Helped()
    x, y = batch(classes=3)
    with bpviz.watch(model) as w:
        record = train(model, w, 3, x, y)[-1]
        findings = [(f.kind, f.layer) for f in w.findings]
    assert [(l.name, l.calls) for l in record.layers] == [
        ("fc1", 1),
        ("relu()", 1),
        ("fc2", 1),
        ("relu()#2", 1),
        ("fc3", 1),
    ]
    assert record.layer("relu()#2").dead_units == 16
    assert record.layer("relu()").dead_units < 16
    assert ("dead_relu", "relu()#2") in findings


def test_tuple_outputs_frozen_parameters_and_no_grad_forwards():
    torch.manual_seed(0)

    class Seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Linear(3, 8)
            self.rnn = nn.LSTM(8, 8, batch_first=True)
            self.head = nn.Linear(8, 2)

        def forward(self, x):
            out, (h, c) = self.rnn(self.emb(x))
            return self.head(out[:, -1])

    model = Seq()
    model.emb.requires_grad_(False)
    x = torch.randn(4, 5, 3)
    y = torch.tensor([0, 1, 1, 0])
    with bpviz.watch(model) as w:
        with torch.no_grad():
            model(x)  # not a training forward: no layer statistics
        record = train(model, w, 1, x, y)[-1]
    assert [l.name for l in record.layers] == ["emb", "rnn", "head"]
    assert record.layer("rnn").shape == (4, 5, 8)
    assert record.layer("emb").param_grad_norm is None
    assert record.layer("emb").grad_norm is None  # frozen first layer: its output needs no gradient
    assert record.layer("rnn").update_ratio > 0
    assert [f.grad_enabled for f in record.forwards] == [False, True]


def test_histograms_keep_their_edges_and_count_every_value():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3))
    x, y = batch(n=32)
    with bpviz.watch(model, level="full") as w:
        records = train(model, w, 4, x, y, lr=0.5)
    for name, numel in (("0", 32 * 16), ("1", 32 * 16), ("2", 32 * 3)):
        hists = [r.layer(name).histogram for r in records]
        assert len({(h.lo, h.hi) for h in hists}) == 1
        for h in hists:
            assert h.counts.sum() == pytest.approx(numel)
    assert (records[0].layer("1").histogram.lo, records[0].layer("1").histogram.hi) == (-1.0, 1.0)
    grad_hist = records[-1].layer("0").grad_histogram
    assert grad_hist.log10 and grad_hist.counts.sum() == pytest.approx(32 * 16)


def test_statistics_match_numpy():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 10), nn.ReLU(), nn.Linear(10, 3))
    x, y = batch(n=20)
    seen = {}
    model[1].register_forward_hook(lambda m, i, o: seen.__setitem__("relu", o.detach().clone()))
    with bpviz.watch(model) as w:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        record = w.step(loss)
    values = seen["relu"].numpy()
    layer = record.layer("1")
    assert layer.mean == pytest.approx(values.mean(), rel=1e-5)
    assert layer.std == pytest.approx(values.std(), rel=1e-4)
    assert layer.max == pytest.approx(values.max())
    assert layer.zero_fraction == pytest.approx((values == 0).mean())
    assert record.loss == pytest.approx(loss.item())


def test_update_ratio_is_the_optimizer_step_over_the_weight():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3))
    x, y = batch()
    before = model[0].weight.detach().clone(), model[0].bias.detach().clone()
    with bpviz.watch(model) as w:
        record = train(model, w, 1, x, y, lr=0.1)[-1]
    after = model[0].weight.detach(), model[0].bias.detach()
    delta = torch.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(after, before)))
    norm = torch.sqrt(sum((a**2).sum() for a in after))
    assert record.layer("0").update_ratio == pytest.approx(float(delta / norm), rel=1e-5)
    assert [p.name for p in record.params] == ["0.weight", "0.bias"]


def test_dead_window_is_configurable():
    model = dead_unit_mlp(2)
    x, y = batch()
    with bpviz.watch(model, Config(dead_window=5)) as w:
        records = train(model, w, 5, x, y)
    assert [r.layer("1").dead_units for r in records] == [2, 2, 2, 2, 2]
    assert not [f for f in w.findings if f.kind == "dead_relu" and f.step < 4]


def test_large_parameters_norms_are_estimated_closely_from_a_slice():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 3))
    x = torch.randn(32, 256)
    y = torch.randint(0, 3, (32,))
    before = model[0].weight.detach().clone()
    with bpviz.watch(model) as w:
        record = train(model, w, 1, x, y, lr=0.1)[-1]
    weight = next(p for p in record.params if p.name == "0.weight")
    true_norm = float(model[0].weight.detach().norm())
    true_update = float((model[0].weight.detach() - before).norm())
    assert weight.numel == 65536 > w.config.update_sample
    assert weight.weight_norm == pytest.approx(true_norm, rel=0.05)
    assert weight.update_norm == pytest.approx(true_update, rel=0.1)
    assert weight.grad_norm == pytest.approx(float(model[0].weight.grad.norm()), rel=1e-5)  # exact


def test_unit_that_fired_only_in_samples_its_counts_skipped_is_not_dead():
    # Activity is counted on every 4th sample here (64 values of 8x2x4x4); whether a unit fired at all
    # comes from its input's maximum over the whole batch.
    x = -torch.ones(8, 2, 4, 4)
    x[:, 0] = 1.0  # channel 0 fires everywhere
    x[1, 1, 0, 0] = 1.0  # channel 1 fires once, in sample 1, which the counts skip
    model = nn.Sequential(nn.ReLU())
    with bpviz.watch(model, Config(unit_activity_sample=64), level="full") as w:
        for _ in range(3):
            out = model(x.clone().requires_grad_())
            out.sum().backward()
            record = w.step(out.sum())
    relu = record.layer("0")
    assert relu.units == 2 and relu.dead_units == 0
    assert list(relu.unit_activity) == [1.0, 0.0]  # the estimate, from samples 0 and 4
    x[1, 1, 0, 0] = -1.0
    with bpviz.watch(model, Config(unit_activity_sample=64), level="full") as w:
        for _ in range(3):
            out = model(x.clone().requires_grad_())
            out.sum().backward()
            record = w.step(out.sum())
    assert record.layer("0").dead_units == 1 and list(record.layer("0").dead_unit_ids) == [1]


def test_sample_of_a_feature_map_sweeps_every_column():
    # Every 512th value of 32x32 maps would always be column 0; here column 0 is the only zero column.
    x = torch.ones(64, 32, 32, 32)
    x[..., 0] = 0.0
    model = nn.Sequential(nn.Identity())
    with bpviz.watch(model) as w:
        out = model(x.requires_grad_())
        out.sum().backward()
        record = w.step(out.sum())
    assert record.layer("0").zero_fraction == pytest.approx(1 / 32, abs=0.01)


class _Experts(nn.Module):
    """Two experts routed by a gate: expert 1 gets no rows of the batch (its ReLUs see (0, 8) inputs)."""

    def __init__(self, functional: bool) -> None:
        super().__init__()
        self.gate = nn.Linear(4, 2)
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(4, 8), *([] if functional else [nn.ReLU()]), nn.Linear(8, 1)) for _ in range(2)
        )
        self.functional = functional
        with torch.no_grad():
            self.gate.bias.copy_(torch.tensor([100.0, -100.0]))

    def forward(self, x):
        route = self.gate(x).argmax(1)
        out = torch.zeros(x.shape[0], 1)
        for i, expert in enumerate(self.experts):
            rows = x[route == i]
            if self.functional:
                hidden = F.relu(expert[0](rows))
                out = out.index_put((route == i,), expert[1](hidden))
            else:
                out = out.index_put((route == i,), expert(rows))
        return out


@pytest.mark.parametrize("functional", [False, True])
@pytest.mark.parametrize("level", ["economy", "full"])
def test_an_expert_given_no_rows_is_no_error_and_training_is_unchanged(functional, level):
    """A ReLU called on an empty batch (a mixture-of-experts expert that got no rows) raised out of bpviz's hook
    into the user's forward ("amax(): Expected reduction dim 0 to have non-zero size")."""
    x, y = torch.randn(8, 4), torch.randn(8, 1)

    def train(watched: bool):
        torch.manual_seed(0)
        model = _Experts(functional)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        w = bpviz.watch(model, level=level) if watched else None
        for _ in range(3):
            loss = F.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            record = w.step(loss) if w is not None else None
        return model, record, w

    plain, _, _ = train(False)
    model, record, w = train(True)
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), model.state_dict().values()))
    assert record.unmeasured == []
    busy = "experts.0.1" if not functional else "relu()"  # F.relu: one call site for both experts
    assert record.layer(busy).units == 8  # the expert that got the rows still has its units counted
    assert record.layer(busy).dead_units == int((record.layer(busy).unit_preact_max <= 0).sum())
    w.detach()
