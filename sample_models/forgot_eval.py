"""Forgotten model.eval(): validation runs through Dropout and BatchNorm in training mode.

`evaluate` wraps validation in torch.no_grad() (good: no graph is built) but
never calls model.eval(). Dropout therefore still zeroes half the activations
at random, and BatchNorm normalises with each validation batch's own statistics
and overwrites its running averages with validation data. Validation metrics
come out noisy and too pessimistic, and validating changes the model.

What to look for: a `train_mode_in_eval` error naming `bn` and `dropout`,
raised when validation runs.

The fix: `model.eval()` before the validation loop and `model.train()` after it
(as healthy_resnet.py does).
"""

from collections import OrderedDict

import torch
from torch import nn


def make_batches(generator: torch.Generator, batches: int, size: int = 64) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Two interleaved noisy rings in 2-D, lifted to 10 dimensions by a fixed random map (2 classes)."""
    lift = torch.randn(2, 10, generator=generator)
    data = []
    for _ in range(batches):
        labels = torch.randint(2, (size,), generator=generator)
        angle = torch.rand(size, generator=generator) * 6.2832
        radius = 1.0 + labels.float() + 0.2 * torch.randn(size, generator=generator)
        points = torch.stack([radius * angle.cos(), radius * angle.sin()], dim=1)
        data.append((points @ lift, labels))
    return data


def evaluate(model: nn.Module, val_data: list) -> dict:
    """Accuracy on the validation batches -- with the bug: no model.eval()."""
    correct = total = 0
    with torch.no_grad():
        for inputs, targets in val_data:
            correct += int((model(inputs).argmax(dim=1) == targets).sum())
            total += len(targets)
    return {"accuracy": correct / total}


def build() -> dict:
    generator = torch.Generator().manual_seed(0)
    model = nn.Sequential(
        OrderedDict(
            fc1=nn.Linear(10, 64),
            bn=nn.BatchNorm1d(64),
            relu=nn.ReLU(),
            dropout=nn.Dropout(0.5),
            fc2=nn.Linear(64, 2),
        )
    )
    return {
        "model": model,
        "train_data": make_batches(generator, 10),
        "val_data": make_batches(generator, 2),
        "evaluate": evaluate,
        "optimizer": torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
    }
