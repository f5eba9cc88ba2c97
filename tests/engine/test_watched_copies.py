"""A copy of a watched model (copy.deepcopy for an EMA or target network, torch.save) is not watched."""

from __future__ import annotations

import copy
import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.optimizer import _global_optimizer_post_hooks, _global_optimizer_pre_hooks

import bpviz
from tests.engine.models import batch


def hook_entries(model: nn.Module) -> int:
    """Every entry of every forward hook dict of every module (hooks and their flags), found in the module itself,
    whatever dicts this torch keeps them in."""
    return sum(
        len(value)
        for m in model.modules()
        for name, value in vars(m).items()
        if name.startswith("_forward_") and isinstance(value, dict)
    )


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))


def train_steps(model: nn.Module, steps: int, seed: int) -> list[torch.Tensor]:
    """Train `model` with its own seeded dropout; the losses."""
    x, y = batch()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    torch.manual_seed(seed)
    losses = []
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.detach())
    return losses


def test_a_deepcopy_while_watched_has_no_bpviz_hooks_after_its_first_forward():
    model = mlp()
    with bpviz.watch(model):
        target = copy.deepcopy(model)
        with torch.no_grad():
            target(batch()[0])
        assert hook_entries(target) == 0
        assert hook_entries(model) > 0  # the original is still watched


def test_a_deepcopy_while_watched_trains_bit_identically_to_a_plain_copy():
    model = mlp()
    plain = copy.deepcopy(model)
    x, y = batch()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with bpviz.watch(model) as w:
        copied = copy.deepcopy(model)
        watched_copy_losses = train_steps(copied, 4, seed=1)  # its forwards with grad, while the original is watched
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        record = w.step(loss)
    assert torch.equal(torch.stack(watched_copy_losses), torch.stack(train_steps(plain, 4, seed=1)))
    for a, b in zip(copied.parameters(), plain.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(copied.buffers(), plain.buffers()):
        assert torch.equal(a, b)
    # the copy's forwards were no part of the original's step
    assert {layer.name: layer.calls for layer in record.layers} == {"0": 1, "1": 1, "2": 1, "3": 1, "4": 1}


def _round_trip(module: nn.Module) -> nn.Module:
    buffer = io.BytesIO()
    torch.save(module, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


def test_torch_save_and_load_of_a_watched_model_and_of_its_copy():
    model = mlp().eval()
    x = batch()[0]
    with bpviz.watch(model):
        expected = model(x)
        loaded = _round_trip(model)
        loaded_copy = _round_trip(copy.deepcopy(model))
        assert torch.equal(loaded(x), expected)
        assert torch.equal(loaded_copy(x), expected)
    assert hook_entries(loaded) == 0
    assert hook_entries(loaded_copy) == 0


def test_detach_removes_every_hook_from_the_original_after_a_copy():
    model = mlp()
    pre, post = len(_global_optimizer_pre_hooks), len(_global_optimizer_post_hooks)
    w = bpviz.watch(model)
    copied = copy.deepcopy(model)
    train_steps(copied, 1, seed=0)
    w.detach()
    assert hook_entries(model) == 0
    assert (len(_global_optimizer_pre_hooks), len(_global_optimizer_post_hooks)) == (pre, post)


def test_a_copy_keeps_the_users_hooks_in_their_order():
    model = mlp()
    order: list[str] = []
    model[0].register_forward_pre_hook(lambda m, args: order.append("pre, before watch"))
    model[0].register_forward_hook(lambda m, args, out: order.append("post, before watch"))
    with bpviz.watch(model):
        model[0].register_forward_pre_hook(lambda m, args: order.append("pre, after watch"))
        model[0].register_forward_hook(lambda m, args, out: order.append("post, after watch"))
        copied = copy.deepcopy(model)
    copied(batch()[0])
    copied(batch()[0])
    once = ["pre, before watch", "pre, after watch", "post, before watch", "post, after watch"]
    assert order == once + once
    assert len(copied[0]._forward_pre_hooks) == len(copied[0]._forward_hooks) == 2


def test_a_copy_of_a_model_watched_twice_runs_and_loses_both_watchers_hooks():
    model = mlp()
    with bpviz.watch(model), bpviz.watch(model):
        copied = copy.deepcopy(model)
    copied(batch()[0])  # the first stand-in removes the second's flags before torch calls it
    assert hook_entries(copied) == 0


def test_a_copys_first_forward_raising_in_a_users_pre_hook_raises_the_users_error():
    """torch then calls the always-called forward hooks from the hook dict itself: none may change it."""
    model = mlp()

    def refuse(module, args):
        raise ValueError("not this input")

    model[0].register_forward_pre_hook(refuse)
    with bpviz.watch(model):
        model[0].register_forward_hook(lambda module, args, output: None)
        copied = copy.deepcopy(model)
    with pytest.raises(ValueError, match="not this input"):
        copied(batch()[0])
