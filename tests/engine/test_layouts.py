"""Layers where real models put them: parametrized weights, and the like. Expected values from own hooks."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations

import bpviz


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
