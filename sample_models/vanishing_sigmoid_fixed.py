"""Vanishing gradients, fixed: the same 10-layer depth with BatchNorm and GELU instead of bare sigmoids.

The twin of vanishing_sigmoid.py: the same data, width, depth and optimizer.
Each hidden layer is Linear -> BatchNorm1d -> GELU: normalisation keeps every
layer's input at unit scale, and GELU's slope is about 1 for positive inputs
instead of a sigmoid's 0.25 at best, so the gradient reaching the first layer
is of the same order as at the last.

What to look for: no vanishing_gradient finding; in the gradient flow view
the bars stay level from output to input.

The fix: applied here (BatchNorm and GELU); residual connections (see
healthy_resnet.py) are the other remedy the course teaches.
"""

import torch
from torch import nn
from vanishing_sigmoid import DEPTH, WIDTH, make_batches


def build() -> dict:
    generator = torch.Generator().manual_seed(0)
    layers = []
    width = 16
    for _ in range(DEPTH):
        layers += [nn.Linear(width, WIDTH), nn.BatchNorm1d(WIDTH), nn.GELU()]
        width = WIDTH
    model = nn.Sequential()
    model.add_module("layers", nn.Sequential(*layers))
    model.add_module("head", nn.Linear(WIDTH, 2))
    return {"model": model, "train_data": make_batches(generator, 10)}
