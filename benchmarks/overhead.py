"""Training-step time with bpviz.watch attached at each level, over a plain step, on three workloads.

Plain and watched steps are interleaved in one run (plain, economy, full,
plain, ...) on identical copies of each model, so drift in the machine's
speed hits all alike; the ratio of medians is printed per workload and level,
with bpviz's own measured share of the step time beside it.

    python benchmarks/overhead.py [--steps 30] [--warmup 5] [--only MLP]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

import bpviz


def mlp():
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 512),
        nn.ReLU(),
        *[m for _ in range(3) for m in (nn.Linear(512, 512), nn.ReLU())],
        nn.Linear(512, 10),
    )
    return model, torch.randn(128, 784), torch.randint(0, 10, (128,))


def cnn():
    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]

    model = nn.Sequential(*block(3, 32), *block(32, 64), *block(64, 64), nn.Flatten(), nn.Linear(64 * 16, 10))
    return model, torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(16, 128)
        layer = nn.TransformerEncoderLayer(128, nhead=4, dim_feedforward=256, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=4, enable_nested_tensor=False)
        self.head = nn.Linear(128, 10)

    def forward(self, x):
        return self.head(self.encoder(self.embed(x)).mean(dim=1))


def transformer():
    return Encoder(), torch.randn(32, 64, 16), torch.randint(0, 10, (32,))


WORKLOADS = {
    "MLP 784-512x4-10, batch 128": mlp,
    "BatchNorm CNN 3x32x32, batch 64": cnn,
    "Transformer encoder 4x d128 seq 64, batch 32": transformer,
}


def timed_step(model, opt, x, y, watcher) -> float:
    start = time.perf_counter()
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    if watcher is not None:
        watcher.step(loss)
    return time.perf_counter() - start


LEVELS = ("economy", "full")


def measure(factory, steps: int, warmup: int) -> tuple[float, dict[str, float], dict[str, float]]:
    """Median plain step, median watched step per level, and bpviz's measured share per level."""
    torch.manual_seed(0)
    model, x, y = factory()
    twins = {level: copy.deepcopy(model) for level in LEVELS}
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    opts = {level: torch.optim.SGD(twin.parameters(), lr=0.01) for level, twin in twins.items()}
    watchers = {level: bpviz.watch(twin, level=level) for level, twin in twins.items()}
    plain, watched = [], {level: [] for level in LEVELS}
    for i in range(warmup + steps):
        a = timed_step(model, opt, x, y, None)
        times = {level: timed_step(twins[level], opts[level], x, y, watchers[level]) for level in LEVELS}
        if i >= warmup:
            plain.append(a)
            for level, seconds in times.items():
                watched[level].append(seconds)
    shares = {}
    for level, watcher in watchers.items():
        watcher.detach()
        shares[level] = watcher.report()["cost"]["share"]
    return statistics.median(plain), {k: statistics.median(v) for k, v in watched.items()}, shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--only", default="", help="run only the workloads whose name contains this text")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; median of {args.steps} interleaved steps")
    header = "".join(f" {level + ' ms':>11} {'ratio':>6} {'share':>6}" for level in LEVELS)
    print(f"{'workload':46} {'plain ms':>9}{header}")
    for name, factory in WORKLOADS.items():
        if args.only.lower() not in name.lower():
            continue
        plain, watched, shares = measure(factory, args.steps, args.warmup)
        cells = "".join(
            f" {watched[level] * 1e3:11.1f} {watched[level] / plain:5.2f}x {100 * shares[level]:5.1f}%"
            for level in LEVELS
        )
        print(f"{name:46} {plain * 1e3:9.1f}{cells}")


if __name__ == "__main__":
    main()
