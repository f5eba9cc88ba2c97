"""Softmax before CrossEntropyLoss: the model's probabilities are squashed a second time.

nn.CrossEntropyLoss expects raw scores (logits) and applies log-softmax itself.
This model ends in nn.Softmax, so the loss sees numbers in [0, 1] and squashes
them again into an almost uniform distribution: gradients are small and flat,
training crawls, and even perfect predictions cannot push the loss below
log(1 + 4/e) = 0.91 for these 5 classes.

What to look for: a `softmax_before_cross_entropy` error on the final `softmax`
layer, and a loss curve that falls slowly and flattens out high.

The fix: delete the final nn.Softmax and train on logits; apply softmax only
when you need probabilities at inference time.
"""

from collections import OrderedDict

import torch
from torch import nn


def make_batches(generator: torch.Generator, batches: int, size: int = 64) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Points in 12 dimensions labelled by the nearest of 5 random centres."""
    centres = torch.randn(5, 12, generator=generator) * 2
    data = []
    for _ in range(batches):
        labels = torch.randint(5, (size,), generator=generator)
        data.append((centres[labels] + torch.randn(size, 12, generator=generator), labels))
    return data


def build() -> dict:
    generator = torch.Generator().manual_seed(0)
    model = nn.Sequential(
        OrderedDict(
            fc1=nn.Linear(12, 64),
            relu=nn.ReLU(),
            fc2=nn.Linear(64, 5),
            softmax=nn.Softmax(dim=1),  # the bug: CrossEntropyLoss already applies (log-)softmax
        )
    )
    return {
        "model": model,
        "train_data": make_batches(generator, 10),
        "loss_fn": nn.CrossEntropyLoss(),
        "optimizer": torch.optim.SGD(model.parameters(), lr=0.1),
    }
