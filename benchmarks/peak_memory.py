"""Peak resident memory of a few training steps, plain and watched at each level, each in a fresh process.

Peak memory is a property of a whole process, so unlike step time it cannot be
measured side by side in one: each contender runs the same steps in a process
of its own, and the peak (`ru_maxrss`) is printed beside the plain one's with
the ratio. The workloads hold large activations and gradients, where what
bpviz keeps alive during a pass shows: overhead.py's BatchNorm CNN and a
12-block BatchNorm CNN at 64x64.

    python3 benchmarks/peak_memory.py [--steps 4]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys

import checkout  # noqa: F401  (before bpviz: this checkout's copy)
import torch
import torch.nn.functional as F
from overhead import cnn
from torch import nn

import bpviz


def deep_cnn() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    layers: list[nn.Module] = [nn.Conv2d(3, 64, 3, padding=1)]
    for _ in range(12):
        layers += [nn.BatchNorm2d(64), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1)]
    model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))
    return model, torch.randn(32, 3, 64, 64), torch.randint(0, 10, (32,))


WORKLOADS = {"BatchNorm CNN 3x32x32, batch 64": cnn, "12-block BatchNorm CNN 3x64x64, batch 32": deep_cnn}
CONTENDERS = ("plain", "economy", "full")


def run_one(workload: str, contender: str, steps: int) -> None:
    """Train `steps` steps in this process and print its peak resident memory in MiB."""
    torch.manual_seed(0)
    model, x, y = WORKLOADS[workload]()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    watcher = None if contender == "plain" else bpviz.watch(model, level=contender)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        if watcher is not None:
            watcher.step(loss)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # KiB on Linux


def peak_of(workload: str, contender: str, steps: int) -> float:
    args = [sys.executable, __file__, "--one", workload, contender, "--steps", str(steps)]
    return float(subprocess.run(args, check=True, capture_output=True, text=True).stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--one", nargs=2, metavar=("WORKLOAD", "CONTENDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        run_one(*args.one, args.steps)
        return
    print(f"torch {torch.__version__}; peak resident memory of {args.steps} steps, each contender in its own process")
    print(f"{'workload':44}" + "".join(f"{c:>12}" for c in CONTENDERS) + "   ratios")
    for workload in WORKLOADS:
        peaks = {c: peak_of(workload, c, args.steps) for c in CONTENDERS}
        cells = "".join(f"{peaks[c]:>9.0f} MB" for c in CONTENDERS)
        ratios = "  ".join(f"{c} {peaks[c] / peaks['plain']:.3f}x" for c in CONTENDERS[1:])
        print(f"{workload:44}{cells}   {ratios}")


if __name__ == "__main__":
    main()
