"""A step with more than one backward pass: only the passes that train the parameters count.

A WGAN-GP critic takes the gradient of its output with respect to its
input before `loss.backward()`; that pass reaches every layer's output, but
says nothing of what training does to the layer. Each case computes the
gradient norms the training pass alone brings to each layer with its own
tensor hooks (switched off around the other pass) and compares bpviz's.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

import bpviz


def critic() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 32), nn.LeakyReLU(0.2), nn.Linear(32, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))


class TrainingGradients:
    """Each layer's output-gradient norm, from the test's own hooks, in the passes `counting` lets through."""

    def __init__(self, model: nn.Module) -> None:
        self.counting = True
        self.squares: dict[str, float] = {}
        for name, module in model.named_children():
            module.register_forward_hook(self._on_output(name))

    def _on_output(self, name: str):
        def keep(_module, _inputs, out) -> None:
            if out.requires_grad:
                out.register_hook(lambda g: self._add(name, g))

        return keep

    def _add(self, name: str, grad: torch.Tensor) -> None:
        if self.counting:
            self.squares[name] = self.squares.get(name, 0.0) + float(grad.double().square().sum())

    def norms(self) -> dict[str, float]:
        return {name: math.sqrt(square) for name, square in self.squares.items()}


def _wgan_gp_step(model: nn.Module, spy: TrainingGradients, opt: torch.optim.Optimizer) -> torch.Tensor:
    real, fake = torch.randn(64, 8) + 1, torch.randn(64, 8)
    eps = torch.rand(64, 1)
    mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
    d_real, d_fake, d_mixed = model(real).mean(), model(fake).mean(), model(mixed)
    spy.counting = False
    (slope,) = torch.autograd.grad(d_mixed.sum(), mixed, create_graph=True)
    spy.counting = True
    loss = d_fake - d_real + 10 * ((slope.norm(2, dim=1) - 1) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss


@pytest.mark.parametrize("level", ["full", "economy"])
def test_a_gradient_penalty_pass_is_left_out_of_the_critics_gradient_norms(level):
    model = critic()
    spy = TrainingGradients(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with bpviz.watch(model, level=level) as w:
        for step in range(3):
            spy.squares.clear()
            record = w.step(_wgan_gp_step(model, spy, opt))
            expected = spy.norms()
            assert sorted(expected) == ["0", "1", "2", "3", "4"]
            if record.detailed or level == "full":
                rel = 1e-5 if level == "full" else 0.05  # economy estimates a large gradient from a sample
                for name, norm in expected.items():
                    assert record.layer(name).grad_norm == pytest.approx(norm, rel=rel), (step, name)
    # the output layer's gradient from the loss is 1/64 from each of d_fake's and d_real's 64 samples:
    assert expected["4"] == pytest.approx(math.sqrt(2 * 64) / 64, rel=1e-6)


def test_autograd_grad_of_the_loss_with_respect_to_the_parameters_is_a_training_pass():
    model = critic()
    spy = TrainingGradients(model)
    x = torch.randn(32, 8)
    with bpviz.watch(model, level="full") as w:
        grads = torch.autograd.grad(model(x).square().mean(), list(model.parameters()))
        with torch.no_grad():
            for p, g in zip(model.parameters(), grads, strict=True):
                p -= 0.01 * g
        record = w.step()
    for name, norm in spy.norms().items():
        assert record.layer(name).grad_norm == pytest.approx(norm, rel=1e-5)


def test_a_model_moved_to_another_dtype_after_watch_keeps_its_gradient_norms():
    model = critic()
    spy = TrainingGradients(model)
    with bpviz.watch(model, level="full") as w:
        model.double()  # gives every parameter a new gradient accumulator
        model(torch.randn(16, 8, dtype=torch.double)).square().mean().backward()
        record = w.step()
    for name, norm in spy.norms().items():
        assert record.layer(name).grad_norm == pytest.approx(norm, rel=1e-6)  # bpviz measures in float32


class Checkpointed(nn.Module):
    """A parameter-free middle layer run through a reentrant checkpoint: its recomputation's backward is a
    nested pass that reaches no parameter, and is still the training pass's."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.first, self.act, self.last = nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(checkpoint(self.act, self.first(x), use_reentrant=True))


def test_a_reentrant_checkpoint_of_a_parameter_free_layer_keeps_its_gradient_norm():
    model = Checkpointed()
    spy = TrainingGradients(model)
    x = torch.randn(32, 8)
    with bpviz.watch(model, level="full") as w:
        model(x).square().mean().backward()
        record = w.step()
    expected = spy.norms()
    assert set(expected) == {"first", "act", "last"}
    for name, norm in expected.items():
        assert record.layer(name).grad_norm == pytest.approx(norm, rel=1e-5), name


def test_a_step_whose_only_pass_is_an_inputs_gradient_keeps_that_pass_s_norms():
    """An adversarial example or a feature visualisation: autograd.grad(..., inputs=x) and no backward of the
    parameters. With no training pass in the step, the one there was is what the layers' gradients are."""
    model = critic()
    spy = TrainingGradients(model)
    x = torch.randn(32, 8, requires_grad=True)
    with bpviz.watch(model, level="full") as w:
        (g,) = torch.autograd.grad(model(x).square().sum(), x)
        record = w.step()
    expected = spy.norms()
    assert sorted(expected) == ["0", "1", "2", "3", "4"]
    for name, norm in expected.items():
        assert record.layer(name).grad_norm == pytest.approx(norm, rel=1e-5), name
    assert record.backward_order == ["4", "3", "2", "1", "0"]
