"""Exploding gradients: a deep network initialised too large, trained with too high a learning rate.

Every layer's weights are drawn twice as large as Kaiming initialisation
would, so each layer doubles the activations on the way forward and the
gradients on the way back: over 10 layers that is a factor of about a thousand.
The learning rate then turns the huge gradients into huge updates, each
making the next gradient larger still.

What to look for: a loss in the thousands at step 0, an `exploding_gradient`
error at step 1 (the gradient norm jumps hundreds of times while the loss
climbs; its squares soon overflow float32), then
`nan_or_inf` naming the first layer whose output overflowed. (LeakyReLU keeps
dead ReLU units out of the picture; with plain ReLU the blow-up also kills
whole layers.)

The fix: Kaiming init (the PyTorch default for nn.Linear is safe), a lower
learning rate, gradient clipping (torch.nn.utils.clip_grad_norm_), and
normalisation layers.
"""

import math

import torch
from torch import nn

DEPTH = 10
WIDTH = 64


def make_batches(generator: torch.Generator, batches: int, size: int = 32) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Points in 32 dimensions labelled by the sign pattern of two random projections (4 classes)."""
    projection = torch.randn(32, 2, generator=generator)
    data = []
    for _ in range(batches):
        x = torch.randn(size, 32, generator=generator)
        signs = (x @ projection > 0).long()
        data.append((x, signs[:, 0] * 2 + signs[:, 1]))
    return data


def build() -> dict:
    generator = torch.Generator().manual_seed(0)
    model = nn.Sequential()
    width = 32
    for i in range(1, DEPTH + 1):
        linear = nn.Linear(width, WIDTH)
        nn.init.normal_(linear.weight, std=2 * math.sqrt(2 / width))  # the bug: twice the Kaiming scale
        model.add_module(f"fc{i}", linear)
        model.add_module(f"act{i}", nn.LeakyReLU(0.1))
        width = WIDTH
    model.add_module("head", nn.Linear(WIDTH, 4))
    return {
        "model": model,
        "train_data": make_batches(generator, 10),
        "optimizer": torch.optim.SGD(model.parameters(), lr=0.01),
    }
