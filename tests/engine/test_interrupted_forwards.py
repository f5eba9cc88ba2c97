"""Forwards that end unusually: a Ctrl-C inside them, a step retried in an `except` block, keyword inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import bpviz


class Interruptible(nn.Module):
    """An MLP with a functional ReLU whose forward raises KeyboardInterrupt when told to (a Ctrl-C)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 3)
        self.interrupt = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.fc1(x))
        if self.interrupt:
            raise KeyboardInterrupt
        return self.fc2(h)


def step(model, w, x, y):
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    return w.step(loss)


def modes_on() -> int:
    return torch._C._len_torch_function_stack()


def test_a_ctrl_c_inside_a_watched_forward_leaves_no_interception_and_no_drift():
    torch.manual_seed(0)
    model = Interruptible()
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    w = bpviz.watch(model)  # no `with`, as in a notebook
    first = [layer.name for layer in step(model, w, x, y).layers]
    model.interrupt = True
    try:
        model(x)
    except KeyboardInterrupt:
        pass
    model.interrupt = False
    names = [[layer.name for layer in step(model, w, x, y).layers] for _ in range(3)]
    assert first == ["fc1", "relu()", "fc2"]
    assert names == [first] * 3
    assert modes_on() == 0  # outside a forward, bpviz's function mode is off again
    w.detach()


def test_a_step_run_inside_an_except_block_records():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    with bpviz.watch(model) as w:
        try:
            raise RuntimeError("CUDA out of memory (a first try with a larger batch)")
        except RuntimeError:
            record = step(model, w, x, y)  # the retry, while the first error is being handled
    assert [layer.name for layer in record.layers] == ["0", "1", "2"]
    assert record.layer("2").grad_norm is not None


class Keyworded(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.fc(pixel_values)


def test_a_keyword_called_model_with_nan_input_blames_the_input():
    model = Keyworded()
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    x[3, 1] = float("nan")
    with bpviz.watch(model) as w:
        loss = F.cross_entropy(model(pixel_values=x), y)
        loss.backward()
        w.step(loss)
    assert [(f.kind, f.layer) for f in w.findings] == [("nan_or_inf", None)]
    assert "input batch" in w.findings[0].message


def test_lbfgs_gradient_norms_are_those_the_closure_computed_in_the_step():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    opt = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=4)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    with bpviz.watch(model) as w:
        for _ in range(2):
            loss = opt.step(closure)
            expected = {n: float(p.grad.norm()) for n, p in model.named_parameters()}  # the last evaluation's
            record = w.step(loss)
    for param in record.params:
        assert param.grad_norm == pytest.approx(expected[param.name], rel=1e-6)
