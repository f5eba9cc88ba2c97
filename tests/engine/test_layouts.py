"""Layers where real models put them: parametrized weights, and the like. Expected values from own hooks."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations

import bpviz
from tests.engine.models import train


def own_output_grad_norms(model: nn.Module, forward, x, y) -> dict[str, float]:
    """The gradient norm reaching each direct child's output, from the test's own hooks."""
    norms = {}

    def hook(module, args, out, name):
        out.register_hook(lambda grad: norms.__setitem__(name, float(grad.norm())))

    for name, child in model.named_children():
        child.register_forward_hook(lambda m, a, o, name=name: hook(m, a, o, name))
    F.cross_entropy(forward(model, x), y).backward()
    return norms


def discriminator_forward(net: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    h = net[1](net[0](x)).unsqueeze(-1)  # the Conv1d wants (N, C, L)
    return net[4](net[3](net[2](h)))


def test_spectral_and_weight_norm_layers_are_the_layers_and_own_their_weights():
    torch.manual_seed(0)
    model = nn.Sequential(
        parametrizations.spectral_norm(nn.Linear(4, 8)),
        nn.LeakyReLU(0.2),
        parametrizations.weight_norm(nn.Conv1d(8, 8, 1)),
        nn.Flatten(),
        nn.Linear(8, 3),
    )
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 4, generator=g), torch.randint(0, 3, (16,), generator=g)
    expected = own_output_grad_norms(copy.deepcopy(model), discriminator_forward, x, y)
    with bpviz.watch(model) as w:
        loss = F.cross_entropy(discriminator_forward(model, x), y)
        loss.backward()
        record = w.step(loss)
    assert [(layer.name, layer.type) for layer in record.layers] == [
        ("0", "ParametrizedLinear"),
        ("1", "LeakyReLU"),
        ("2", "ParametrizedConv1d"),
        ("3", "Flatten"),
        ("4", "Linear"),
    ]
    for name, norm in expected.items():
        assert record.layer(name).grad_norm == pytest.approx(norm, rel=1e-6)
    owners = {p.name: p.layer for p in record.params}
    assert owners["0.parametrizations.weight.original"] == "0"
    assert owners["2.parametrizations.weight.original0"] == "2"


def kill_units(weight: torch.Tensor, bias: torch.Tensor, dead: int) -> None:
    """The first `dead` output units of a layer never fire: no incoming weight, a negative bias."""
    with torch.no_grad():
        weight[:dead] = 0.0
        bias[:dead] = -1.0


class NHWCBlock(nn.Module):
    """A conv, then an MLP on channels-last feature maps (ConvNeXt/Swin style) with a ReLU on 160 features."""

    def __init__(self, dead: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.fc1 = nn.Linear(16, 160)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(160, 4)
        kill_units(self.fc1.weight, self.fc1.bias, dead)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x).permute(0, 2, 3, 1)  # (N, 16, 16, 16) -> (N, H, W, C): H equals C here
        return self.fc2(self.act(self.fc1(y))).mean(dim=(1, 2))


class ConvTokens(nn.Module):
    """Conv1d features transposed to (N, L, C) before the ReLU, as sequence models do."""

    def __init__(self, dead: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, 24, 3, padding=1)
        self.head = nn.Linear(24, 3)
        kill_units(self.conv.weight, self.conv.bias, dead)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.relu(self.conv(x).transpose(1, 2))).mean(dim=1)


class DenseBlock(nn.Module):
    """DenseNet-style: the input concatenated with a conv's 8 channels, then a ReLU on all 16; the maps are 8 wide,
    as many as the conv's channels, and the units once went to the width."""

    def __init__(self, dead: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Linear(16, 3)
        kill_units(self.conv.weight, self.conv.bias, dead)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the input's channels are kept positive so the dead ones are the conv's
        features = F.relu(torch.cat([self.conv(x), x.abs() + 0.1], dim=1))
        return self.head(features.mean(dim=(2, 3)))


class LinearReLU(nn.Module):
    """A leaf with its own weights and F.relu inside its forward."""

    def __init__(self, dead: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(16, 4))
        self.bias = nn.Parameter(torch.full((16,), 5.0))
        kill_units(self.weight, self.bias, dead)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(F.linear(x, self.weight, self.bias))


@pytest.mark.parametrize(
    ("make", "shape", "layer", "units", "dead"),
    [
        (lambda: NHWCBlock(40), (8, 3, 16, 16), "act", 160, 40),
        (lambda: ConvTokens(6), (8, 4, 30), "relu()", 24, 6),
        (lambda: DenseBlock(3), (8, 8, 8, 8), "relu()", 16, 3),
        (lambda: nn.Sequential(LinearReLU(5), nn.Linear(16, 3)), (8, 4), "0", 16, 5),
    ],
)
def test_units_are_where_the_producing_layer_put_them(make, shape, layer, units, dead):
    torch.manual_seed(0)
    model = make()
    x = torch.randn(*shape)
    with bpviz.watch(model) as w:
        for _ in range(3):
            out = model(x)
            out.float().pow(2).mean().backward()
            record = w.step()
    step = record.layer(layer)
    assert (step.units, step.dead_units) == (units, dead)
    assert sorted(step.dead_unit_ids.tolist()) == list(range(dead))


@pytest.mark.parametrize("how", ["checkpoint", "checkpoint_sequential", "non_reentrant"])
def test_model_level_checkpointing_is_no_validation_and_measures_the_recomputed_forward(how):
    from torch.utils.checkpoint import checkpoint, checkpoint_sequential

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.1), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
    x, y = torch.randn(16, 4, requires_grad=True), torch.randint(0, 3, (16,))
    with bpviz.watch(model) as w:
        if how == "checkpoint":
            out = checkpoint(model, x, use_reentrant=True)
        elif how == "checkpoint_sequential":
            out = checkpoint_sequential(model, 3, x, use_reentrant=True)
        else:
            out = checkpoint(model, x, use_reentrant=False)
        loss = F.cross_entropy(out, y)
        loss.backward()
        record = w.step(loss)
    assert w.findings == []
    assert sorted(layer.name for layer in record.layers) == ["0", "1", "2", "3", "4", "5"]
    assert all(layer.grad_norm is not None for layer in record.layers)


class CellDecoder(nn.Module):
    """time_sequence_prediction style: an LSTMCell and a Linear run once per time step from one loop."""

    def __init__(self) -> None:
        super().__init__()
        self.cell = nn.LSTMCell(1, 16)
        self.out = nn.Linear(16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = c = torch.zeros(x.shape[0], 16)
        outputs = []
        for t in range(x.shape[1]):
            h, c = self.cell(x[:, t : t + 1], (h, c))
            outputs.append(self.out(h))
        return torch.cat(outputs, dim=1)


def test_a_cell_called_once_per_time_step_is_one_layer_with_every_call_counted():
    torch.manual_seed(0)
    model = CellDecoder()
    x = torch.randn(8, 24)  # under Config.calls_per_layer_step: every call measured
    hs = []
    handle = model.cell.register_forward_hook(lambda m, a, out: hs.append(out[0].detach()))
    with bpviz.watch(model) as w:
        loss = model(x).pow(2).mean()
        loss.backward()
        record = w.step(loss)
    handle.remove()
    assert [(layer.name, layer.calls) for layer in record.layers] == [("cell", 24), ("out", 24)]
    every = torch.stack(hs)  # the hook above saw each call's h: 24 time steps
    cell = record.layer("cell")
    assert cell.mean == pytest.approx(float(every.double().mean()), rel=1e-6)
    assert cell.max == pytest.approx(float(every.max()))


class LoopedLayers(nn.Module):
    """The hidden layers in a loop, one activation call after each: one place in the code, three layers."""

    def __init__(self, activation) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(8, 32), nn.Linear(32, 32), nn.Linear(32, 16)])
        self.head = nn.Linear(16, 2)
        self.activation = activation
        with torch.no_grad():
            self.layers[1].bias.fill_(-100.0)  # every unit of the second hidden layer is dead

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = self.activation(layer(x))
        return self.head(x)


# torch.relu is a builtin, called from the user's line; F.relu is torch's Python; nn.ReLU one module for all
@pytest.mark.parametrize(
    ("activation", "name"),
    [(torch.relu, "relu()"), (F.relu, "relu()"), (nn.ReLU(), "activation")],
    ids=["torch.relu", "F.relu", "one nn.ReLU"],
)
def test_one_activation_call_in_a_loop_over_layers_is_a_layer_per_layer(activation, name):
    torch.manual_seed(0)
    model = LoopedLayers(activation)
    with bpviz.watch(model) as w:
        record = train(model, w, 4, torch.randn(16, 8), torch.randint(0, 2, (16,)))[-1]
    first, second, third = name, f"{name}#2", f"{name}#3"
    assert [layer.name for layer in record.layers] == ["layers.0", first, "layers.1", second, "layers.2", third, "head"]
    assert [record.layer(n).shape for n in (first, second, third)] == [(16, 32), (16, 32), (16, 16)]
    assert record.layer(second).dead_units == 32
    dead = [f for f in w.findings if f.kind == "dead_relu" and f.layer == second]
    assert len(dead) == 1 and dead[0].message.startswith(f"32 of 32 units of {second} (100%) are dead")


class Unrolled(nn.Module):
    """A block applied to its own output four times (weights tied across depth), its activation functional;
    its first input from another layer."""

    def __init__(self) -> None:
        super().__init__()
        self.embed, self.block = nn.Linear(16, 16), nn.Linear(16, 16)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = self.embed(h)
        for _ in range(4):
            h = torch.tanh(self.block(h))
        return h


def test_a_block_fed_its_own_output_in_a_loop_stays_one_layer():
    model = Unrolled()
    with bpviz.watch(model) as w:
        loss = model(torch.randn(8, 16)).pow(2).mean()
        loss.backward()
        record = w.step(loss)
    assert [(layer.name, layer.calls) for layer in record.layers] == [("embed", 1), ("block", 4), ("tanh()", 4)]


class Recurrent(nn.Module):
    """A hand-written RNN: its activation called once per time step from one line, on code's sum."""

    def __init__(self, activation) -> None:
        super().__init__()
        self.inp, self.rec, self.activation = nn.Linear(1, 16), nn.Linear(16, 16), activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.zeros(x.shape[0], 16)
        for t in range(x.shape[1]):
            h = self.activation(self.rec(h) + self.inp(x[:, t : t + 1]))
        return h


@pytest.mark.parametrize(
    ("activation", "name"),
    [(torch.relu, "relu()"), (F.relu, "relu()"), (F.silu, "silu()"), (torch.tanh, "tanh()"), (nn.Tanh(), "activation")],
)
def test_an_activation_called_once_per_time_step_is_one_layer_builtin_or_not(activation, name):
    model = Recurrent(activation)
    with bpviz.watch(model) as w:
        loss = model(torch.randn(4, 12)).pow(2).mean()
        loss.backward()
        record = w.step(loss)
    assert [(layer.name, layer.calls) for layer in record.layers] == [("rec", 12), ("inp", 12), (name, 12)]


def test_a_checkpointed_loop_over_layers_names_its_activations_as_the_plain_one_does():
    # the recomputation in the backward names the layers again: each ReLU's gradient must reach its own layer
    from torch.utils.checkpoint import checkpoint

    def norms(checkpointed: bool) -> list[tuple[str, float]]:
        torch.manual_seed(0)
        model = LoopedLayers(torch.relu)
        model.layers[1].bias.data.zero_()  # every layer alive: each gradient is its own
        x, y = torch.randn(16, 8), torch.randint(0, 2, (16,))
        with bpviz.watch(model) as w:
            out = checkpoint(model, x, use_reentrant=False) if checkpointed else model(x)
            loss = F.cross_entropy(out, y)
            loss.backward()
            record = w.step(loss)
        return [(layer.name, layer.grad_norm) for layer in record.layers]

    plain = norms(False)
    assert [name for name, _ in plain][1::2] == ["relu()", "relu()#2", "relu()#3"]
    assert norms(True) == plain


class ResidualLoop(nn.Module):
    """Residual blocks in a loop at the model's top, the activation on code's sum (`relu(x + fc(x))`) or
    product (`relu(fc(x) * 2)`)."""

    def __init__(self, scaled: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(nn.Linear(16, 16) for _ in range(3))
        self.head = nn.Linear(16, 2)
        self.scaled = scaled
        with torch.no_grad():
            self.blocks[1].bias.fill_(-100.0)  # the second block's sum is negative everywhere: its units are dead

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = torch.relu(block(x) * 2) if self.scaled else torch.relu(x + block(x))
        return self.head(x)


@pytest.mark.parametrize("scaled", [False, True], ids=["x + block(x)", "block(x) * 2"])
def test_an_activation_on_code_made_input_in_a_loop_over_layers_is_a_layer_per_layer(scaled):
    torch.manual_seed(0)
    model = ResidualLoop(scaled)
    with bpviz.watch(model) as w:
        record = train(model, w, 4, torch.randn(16, 16), torch.randint(0, 2, (16,)))[-1]
    names = ["blocks.0", "relu()", "blocks.1", "relu()#2", "blocks.2", "relu()#3", "head"]
    assert [layer.name for layer in record.layers] == names
    assert record.layer("relu()#2").dead_units == 16
    assert [f.layer for f in w.findings if f.kind == "dead_relu"][:1] == ["relu()#2"]
