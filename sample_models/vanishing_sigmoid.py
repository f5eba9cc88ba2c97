"""Vanishing gradients: a 10-layer sigmoid MLP whose first layers barely learn.

A sigmoid's derivative is at most 0.25, and each default-initialised Linear
layer shrinks the gradient a little more, so the gradient reaching the first
layer is many orders of magnitude smaller than at the last one.

What to look for: a `vanishing_gradient` finding on `layers.0`; in the gradient
flow view the bars fall off a cliff from right (output) to left (input).

The fix: ReLU/GELU activations in the hidden layers with Kaiming init, or
normalisation (BatchNorm/LayerNorm), or residual connections (see
healthy_resnet.py), or fewer layers.
"""

import torch
from torch import nn

DEPTH = 10
WIDTH = 32


def make_batches(generator: torch.Generator, batches: int, size: int = 64) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Inputs in 16 dimensions; the label says which half-space of a random plane they lie in."""
    plane = torch.randn(16, generator=generator)
    data = []
    for _ in range(batches):
        x = torch.randn(size, 16, generator=generator)
        data.append((x, (x @ plane > 0).long()))
    return data


def build() -> dict:
    generator = torch.Generator().manual_seed(0)
    layers = []
    width = 16
    for _ in range(DEPTH):
        layers += [nn.Linear(width, WIDTH), nn.Sigmoid()]
        width = WIDTH
    model = nn.Sequential()
    model.add_module("layers", nn.Sequential(*layers))
    model.add_module("head", nn.Linear(WIDTH, 2))
    return {"model": model, "train_data": make_batches(generator, 10)}
