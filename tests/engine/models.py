"""Small models built to have an exactly known property, shared by the engine tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def dead_unit_mlp(dead: int, width: int = 8) -> nn.Sequential:
    """Linear(4, width) -> ReLU where exactly `dead` units can never fire (zero weights, bias -1)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, width), nn.ReLU(), nn.Linear(width, 3))
    with torch.no_grad():
        model[0].weight[:dead] = 0.0
        model[0].bias[:dead] = -1.0
        model[0].bias[dead:] = 5.0  # the others fire on every sample
    return model


class NanMaker(nn.Module):
    """Takes the log of its input: NaN for every negative value."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(x)


class Functional(nn.Module):
    """Uses functional activations of every spelling inside a container's forward."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(6, 6)
        self.b = nn.Linear(6, 6)
        self.c = nn.Linear(6, 6)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.a(x))
        x = torch.relu(self.b(x))
        x = self.c(x).relu_()
        x = torch.sigmoid(x)
        return self.act(x)


def batch(n: int = 16, features: int = 4, classes: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, features, generator=g), torch.randint(0, classes, (n,), generator=g)


def train(model: nn.Module, watcher, steps: int, x, y, lr: float = 0.01, loss_fn=F.cross_entropy):
    """A plain user loop with watcher.step at the end of each step; returns the records."""
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    records = []
    for _ in range(steps):
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        records.append(watcher.step(loss))
    return records
