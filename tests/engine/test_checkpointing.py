"""Activation checkpointing: the layers of a checkpointed model read as those of the same model without it.

Each case trains two copies of one model in lockstep, one plainly and one
through torch.utils.checkpoint; the plain copy's forward order comes from the
test's own forward hooks, and every statistic of the checkpointed run must
equal the plain run's (the recomputation in backward repeats the forward).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint, checkpoint_sequential, set_checkpoint_early_stop

import bpviz
from bpviz.cli import main

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


class Blocks(nn.Sequential):
    """The same layers, each middle one checkpointed inside the model's own forward (as Hugging Face's
    gradient_checkpointing_enable() does): the no-grad pass runs within a forward that has gradients."""

    def __init__(self, net: nn.Sequential, reentrant: bool) -> None:
        super().__init__(*net)
        self.reentrant = reentrant

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self[1](self[0](x))
        for index in (2, 3, 4, 5):
            x = checkpoint(self[index], x, use_reentrant=self.reentrant)
        return self[6](x)


def forward(how: str, net: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    if how == "plain" or how.startswith("blocks"):
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


def close(value: float | None, rel: float):
    """What a statistic must equal: `value` within `rel`, or None where it does not apply (a layer without
    parameters has no parameter-gradient norm)."""
    return value if value is None else pytest.approx(value, rel=rel, abs=1e-9)


@pytest.mark.parametrize(
    "how",
    [
        "sequential",
        "sequential_non_reentrant",
        "reentrant",
        "non_reentrant",
        "non_reentrant_full_recompute",
        "blocks_reentrant",
        "blocks_non_reentrant",
    ],
)
def test_a_checkpointed_model_shows_the_plain_models_layers_in_forward_order_with_its_values(how):
    plain_net = model()
    plain, plain_findings, plain_graph = train("plain", plain_net)
    net = model()
    records, findings, graph = train(how, Blocks(net, how == "blocks_reentrant") if how.startswith("blocks") else net)
    order = own_forward_order(model())
    assert [layer.name for layer in plain[-1].layers] == order
    for step, (expected, got) in enumerate(zip(plain, records)):
        assert [layer.name for layer in got.layers] == order, step
        assert [layer.order for layer in got.layers] == list(range(len(order)))
        # checkpoint_sequential calls the children one by one: more root forwards, every one a training one
        assert all(f.grad_enabled and f.backward and f.model_training for f in got.forwards)
        for want, have in zip(expected.layers, got.layers):
            for stat in STATS:
                assert getattr(have, stat) == close(getattr(want, stat), 1e-5), (step, want.name, stat)
        assert got.backward_order == expected.backward_order
    assert [node.name for node in graph.nodes] == order
    assert [(f.kind, f.layer) for f in findings] == [(f.kind, f.layer) for f in plain_findings]


EXPERIMENT = Path(__file__).resolve().parents[1] / "experiments" / "gpt2_checkpointed.py"


def test_hugging_face_gradient_checkpointing_reads_as_the_same_model_without_it(tmp_path):
    pytest.importorskip("transformers")
    spec = importlib.util.spec_from_file_location("gpt2_checkpointed", EXPERIMENT)
    experiment = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(experiment)
    runs = []
    for checkpointed in (True, False):
        torch.manual_seed(0)
        built = experiment.build()
        model, loss_fn, opt = built["model"], built["loss_fn"], built["optimizer"]
        if not checkpointed:
            (getattr(model, "activation_checkpointing_disable", None) or model.gradient_checkpointing_disable)()
        records = []
        with bpviz.watch(model, level="full") as w:
            for x, y in built["train_data"][:3]:
                loss = loss_fn(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                records.append(w.step(loss))
        runs.append(records)
    for got, want in zip(*runs):
        assert [layer.name for layer in got.layers] == [layer.name for layer in want.layers]
        assert {layer.calls for layer in got.layers} == {1}  # each block ran twice a step, and reads once
        for have, expected in zip(got.layers, want.layers):
            for stat in ("mean", "std", "grad_norm", "param_grad_norm"):
                assert getattr(have, stat) == close(getattr(expected, stat), 1e-4)
    report = tmp_path / "report.json"
    assert main(["check", str(EXPERIMENT), "--json", str(report)]) == 0
    checked = json.loads(report.read_text())
    assert [f for f in checked["findings"] if f["severity"] != "info"] == []
    assert checked["loss"][-1] < checked["loss"][0]


def conv_model() -> nn.Sequential:
    """Conv1d features (N, C, L) with 3 channels of the first conv held negative: dead after the ReLU."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv1d(4, 12, 3, padding=1),
        nn.ReLU(),
        nn.Conv1d(12, 12, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(360, 3),
    )
    with torch.no_grad():
        net[0].bias[:3] = -100.0
    return net


@pytest.mark.parametrize("reentrant", [True, False])
def test_checkpoint_sequential_keeps_the_units_on_the_channels_of_the_layer_that_made_them(reentrant):
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, 4, 30, generator=g), torch.randint(0, 3, (8,), generator=g)
    net = conv_model()
    with bpviz.watch(net) as w:
        for _ in range(3):  # dead_window steps: the held channels count as dead
            out = checkpoint_sequential(net, 3, x.clone().requires_grad_(True), use_reentrant=reentrant)
            F.cross_entropy(out, y).backward()
            record = w.step()
    first, second = record.layer("1"), record.layer("3")
    assert (first.units, second.units) == (12, 12)  # the convs' out_channels, not the length 30
    assert sorted(first.dead_unit_ids.tolist()) == [0, 1, 2]
