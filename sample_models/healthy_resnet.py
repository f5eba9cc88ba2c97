"""A healthy reference: a small residual CNN with BatchNorm and GELU that learns.

Compare the other samples against this one. Residual connections give the
gradient a direct path back to the first layers, BatchNorm keeps every layer's
activations centred and scaled, GELU has no dead zone, and `evaluate` switches
to eval mode for validation and back to training mode afterwards.

What to look for: no findings; gradient norms of the same order from the first
layer to the last, activation histograms that stay centred and spread, a falling
loss, and update/weight ratios around 1e-3 to 1e-2.

The fix: nothing to fix. Copy its habits.
"""

import torch
from torch import nn

SIZE = 12
CLASSES = 4


def make_batches(generator: torch.Generator, batches: int, size: int = 32) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Noisy 12x12 single-channel images of four patterns: horizontal, vertical or diagonal stripes, or a blob."""
    ramp = torch.arange(SIZE, dtype=torch.float32)
    rows, cols = ramp[:, None].expand(SIZE, SIZE), ramp[None, :].expand(SIZE, SIZE)
    patterns = torch.stack(
        [
            torch.sin(rows * 1.6),
            torch.sin(cols * 1.6),
            torch.sin((rows + cols) * 1.1),
            torch.exp(-((rows - 5.5) ** 2 + (cols - 5.5) ** 2) / 12) * 2 - 0.5,
        ]
    )
    data = []
    for _ in range(batches):
        labels = torch.randint(CLASSES, (size,), generator=generator)
        noise = 0.8 * torch.randn(size, SIZE, SIZE, generator=generator)
        data.append(((patterns[labels] + noise).unsqueeze(1), labels))
    return data


class Block(nn.Module):
    """conv-BN-GELU-conv-BN plus the input, then GELU: the basic residual block."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.act1 = nn.GELU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.act2 = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act2(x + self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x))))))


class ResNet(nn.Module):
    def __init__(self, channels: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.GELU())
        self.block1 = Block(channels)
        self.block2 = Block(channels)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(channels, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block2(self.block1(self.stem(x)))
        return self.head(self.pool(x).flatten(1))


def evaluate(model: nn.Module, val_data: list) -> dict:
    """Validation the right way: eval mode and no_grad, then back to training mode."""
    model.eval()
    correct = total = 0
    loss = 0.0
    with torch.no_grad():
        for inputs, targets in val_data:
            logits = model(inputs)
            loss += float(nn.functional.cross_entropy(logits, targets, reduction="sum"))
            correct += int((logits.argmax(dim=1) == targets).sum())
            total += len(targets)
    model.train()
    return {"loss": loss / total, "accuracy": correct / total}


def build() -> dict:
    generator = torch.Generator().manual_seed(0)
    model = ResNet()
    return {
        "model": model,
        "train_data": make_batches(generator, 10),
        "val_data": make_batches(generator, 2),
        "evaluate": evaluate,
        "optimizer": torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
    }
