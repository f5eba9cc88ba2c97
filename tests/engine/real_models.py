"""Plain-torch versions of the layouts real models use (ConvNeXt, a VAE, a language model), for healthy controls.

Built in-file, no downloads: each reproduces the property that once made
bpviz raise a false finding (layer-scale at 1e-6, a loss summed over the
batch, an output sigmoid, a large vocabulary), at a size a CPU test affords.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvNeXtBlock(nn.Module):
    """ConvNeXt's block: depthwise 7x7 conv, then an MLP on NHWC features, scaled by a layer-scale at 1e-6."""

    def __init__(self, dim: int, layer_scale: float = 1e-6) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(layer_scale * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        return x + (self.gamma * y).permute(0, 3, 1, 2)


class TinyConvNeXt(nn.Module):
    """A patchify stem, a few ConvNeXt blocks, global pooling and a linear head."""

    def __init__(self, dim: int = 16, depth: int = 3, classes: int = 4) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, dim, kernel_size=4, stride=4)
        self.stem_norm = nn.GroupNorm(1, dim)
        self.blocks = nn.Sequential(*(ConvNeXtBlock(dim) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem_norm(self.stem(x)))
        return self.head(self.norm(x.mean(dim=(2, 3))))


class VAE(nn.Module):
    """The pytorch/examples VAE: 784-400-20 encoder, 20-400-784 decoder ending in a sigmoid."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, 20)
        self.fc22 = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20, 400)
        self.fc4 = nn.Linear(400, 784)

    def forward(self, x: torch.Tensor):
        h = F.relu(self.fc1(x.view(-1, 784)))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar


def vae_loss(output, x: torch.Tensor) -> torch.Tensor:
    """Reconstruction plus KL divergence, both summed over the batch, as the upstream example does."""
    recon, mu, logvar = output
    bce = F.binary_cross_entropy(recon, x.view(-1, 784), reduction="sum")
    return bce - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


def strokes(n: int, generator: torch.Generator) -> torch.Tensor:
    """MNIST-like images: black, with one bright bar and one grey bar at random places."""
    x = torch.zeros(n, 1, 28, 28)
    rows = torch.randint(4, 24, (n,), generator=generator)
    cols = torch.randint(4, 24, (n,), generator=generator)
    grey = torch.rand(n, generator=generator) * 0.5 + 0.5
    for i in range(n):
        x[i, 0, rows[i] - 3 : rows[i] + 3, 6:22] = grey[i]
        x[i, 0, 6:22, cols[i] - 2 : cols[i] + 2] = 1.0
    return x


class BagOfWords(nn.Module):
    """A large-vocabulary embedding averaged over the sequence, then a small classifier."""

    def __init__(self, vocab: int = 50000, dim: int = 32, classes: int = 4, sparse: bool = False) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim, sparse=sparse)
        self.hidden = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(F.relu(self.hidden(self.embedding(tokens).mean(dim=1))))
