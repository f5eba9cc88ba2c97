"""Dying ReLU: most units of the second hidden layer go silent for good.

The second hidden layer's biases start at -2 (a "sparse activations" idea gone
wrong) and the learning rate is high, so the inputs of most `relu2` units are
negative on every sample. A ReLU with a negative input outputs zero *and passes
back zero gradient*, so nothing ever pulls those units back.

What to look for: a `dead_relu` error on `relu2` (well over half its units dead)
while `relu1` stays mostly alive; in the window, relu2's histogram is a spike at
zero and its unit-activity strip is almost all dark.

The fix: zero biases (the default init), a learning rate around 0.05, or
nn.LeakyReLU / nn.GELU, which keep a gradient for negative inputs.
"""

import torch
from torch import nn


def make_batches(generator: torch.Generator, batches: int, size: int = 64) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Points in 20 dimensions labelled by the nearest of 4 random centres."""
    centres = torch.randn(4, 20, generator=generator) * 2
    data = []
    for _ in range(batches):
        labels = torch.randint(4, (size,), generator=generator)
        data.append((centres[labels] + torch.randn(size, 20, generator=generator), labels))
    return data


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(20, 64)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(64, 64)
        self.relu2 = nn.ReLU()
        self.out = nn.Linear(64, 4)
        nn.init.constant_(self.fc2.bias, -2.0)  # the bug: most of relu2 starts (and stays) below zero

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.relu2(self.fc2(self.relu1(self.fc1(x)))))


def build() -> dict:
    generator = torch.Generator().manual_seed(0)
    model = MLP()
    return {
        "model": model,
        "train_data": make_batches(generator, 10),
        "optimizer": torch.optim.SGD(model.parameters(), lr=0.5),
    }
