"""Activation checkpointing: the layers of a checkpointed model read as those of the same model without it.

Each case trains two copies of one model in lockstep, one plainly and one
through torch.utils.checkpoint; the plain copy's forward order comes from the
test's own forward hooks, and every statistic of the checkpointed run must
equal the plain run's (the recomputation in backward repeats the forward).
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint, checkpoint_sequential, set_checkpoint_early_stop

import bpviz

STATS = ("calls", "mean", "std", "min", "max", "zero_fraction", "grad_norm", "param_grad_norm", "update_ratio")


class Residual(nn.Module):
    """A block with a functional activation and a skip: layers that are not plain Sequential children."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.tanh(self.fc(x))


def model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(6, 16), nn.ReLU(), Residual(), nn.Linear(16, 16), nn.Sigmoid(), Residual(), nn.Linear(16, 3)
    )


def forward(how: str, net: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    if how == "plain":
        return net(x)
    if how == "sequential":
        return checkpoint_sequential(net, 3, x, use_reentrant=True)
    if how == "sequential_non_reentrant":
        return checkpoint_sequential(net, 3, x, use_reentrant=False)
    if how == "reentrant":
        return checkpoint(net, x, use_reentrant=True)
    if how == "non_reentrant_full_recompute":  # torch recomputes every layer, not only up to the last one needed
        with set_checkpoint_early_stop(False):
            return checkpoint(net, x, use_reentrant=False)
    return checkpoint(net, x, use_reentrant=False)


def train(how: str, net: nn.Sequential, steps: int = 3) -> tuple[list, list]:
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(32, 6, generator=g), torch.randint(0, 3, (32,), generator=g)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    records = []
    with bpviz.watch(net, level="full") as w:
        for _ in range(steps):
            loss = F.cross_entropy(forward(how, net, x.clone().requires_grad_(True)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            records.append(w.step(loss))
    return records, w.findings, w.graph


def own_forward_order(net: nn.Sequential) -> list[str]:
    """The leaf modules and the blocks' tanh in the order one plain forward calls them, by the test's own hooks."""
    seen: list[str] = []
    handles = [
        module.register_forward_hook(lambda m, a, o, name=name: seen.append(name))
        for name, module in net.named_modules()
        if not list(module.children())
    ]
    with torch.no_grad():
        net(torch.zeros(1, 6))
    for handle in handles:
        handle.remove()
    for block in ("2", "5"):  # the functional tanh follows its block's Linear
        seen.insert(seen.index(f"{block}.fc") + 1, f"{block}.tanh()")
    return seen


@pytest.mark.parametrize(
    "how", ["sequential", "sequential_non_reentrant", "reentrant", "non_reentrant", "non_reentrant_full_recompute"]
)
def test_a_checkpointed_model_shows_the_plain_models_layers_in_forward_order_with_its_values(how):
    plain_net = model()
    plain, plain_findings, plain_graph = train("plain", plain_net)
    records, findings, graph = train(how, copy.deepcopy(model()))
    order = own_forward_order(model())
    assert [layer.name for layer in plain[-1].layers] == order
    for step, (expected, got) in enumerate(zip(plain, records)):
        assert [layer.name for layer in got.layers] == order, step
        assert [layer.order for layer in got.layers] == list(range(len(order)))
        # checkpoint_sequential calls the children one by one: more root forwards, every one a training one
        assert all(f.grad_enabled and f.backward and f.model_training for f in got.forwards)
        for want, have in zip(expected.layers, got.layers):
            for stat in STATS:
                assert getattr(have, stat) == pytest.approx(getattr(want, stat), rel=1e-5, abs=1e-9), (
                    step,
                    want.name,
                    stat,
                )
        assert got.backward_order == expected.backward_order
    assert [node.name for node in graph.nodes] == order
    assert [(f.kind, f.layer) for f in findings] == [(f.kind, f.layer) for f in plain_findings]
