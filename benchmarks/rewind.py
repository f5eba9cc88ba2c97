"""What rewinding costs: the snapshots' share of step time, one snapshot's size and time, a rewind's latency.

Step time: two Steppers on the same experiment (overhead.py's MLP, Adam), one
taking the default snapshots (every 10 steps), one none; steps interleaved
(ABAB...), ratio of medians over blocks of 10 steps, since a snapshot is taken
once in ten. Rewind: from step 59 back to a step whose nearest snapshot is
0 and 9 steps before it (restore alone, and restore plus 9 replayed steps).

    PYTHONPATH=. python3 benchmarks/rewind.py [--blocks 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import textwrap
import time
from pathlib import Path

import checkout  # noqa: F401  (before bpviz: this checkout's copy)

from bpviz.engine.load.experiment import load_experiment
from bpviz.engine.session.snapshots import SnapshotStore
from bpviz.engine.session.stepper import Stepper

EXPERIMENT = """
import torch
from torch import nn

def build():
    g = torch.Generator().manual_seed(0)
    widths = [784, 512, 512, 512, 512, 10]
    layers = []
    for a, b in zip(widths, widths[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    model = nn.Sequential(*layers[:-1])
    data = [(torch.randn(128, 784, generator=g), torch.randint(0, 10, (128,), generator=g)) for _ in range(8)]
    return {"model": model, "train_data": data, "optimizer": torch.optim.Adam(model.parameters(), lr=1e-3)}
"""


def block(stepper: Stepper, steps: int) -> float:
    started = time.perf_counter()
    for _ in range(steps):
        stepper.step()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=5, help="blocks of 10 steps per side (default 5)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    path = folder / "mlp.py"
    path.write_text(textwrap.dedent(EXPERIMENT))
    with_snapshots = Stepper(load_experiment(path), level="full")
    without = Stepper(load_experiment(path), level="full", snapshots=SnapshotStore(every=10**9))
    block(with_snapshots, 10)  # warm-up
    block(without, 10)
    a, b = [], []
    for _ in range(args.blocks):
        a.append(block(with_snapshots, 10))
        b.append(block(without, 10))
    ratio = statistics.median(a) / statistics.median(b)
    print(
        f"10 steps: {statistics.median(a) * 100:.1f} ms/step with snapshots, {statistics.median(b) * 100:.1f} without"
    )
    print(
        f"  ratio {ratio:.3f} (snapshots kept: {len(with_snapshots.snapshots.snapshots)}, "
        f"limit {with_snapshots.snapshots.limit})"
    )
    started = time.perf_counter()
    with_snapshots._snapshot()
    took = time.perf_counter() - started
    size = with_snapshots.snapshots.snapshots[-1].nbytes
    print(f"one snapshot: {took * 1000:.1f} ms, {size / 2**20:.1f} MiB")
    last = with_snapshots.step_index - 1  # a multiple of 10 minus 1: the snapshot at last + 1 was just taken
    for replayed in (0, 9):
        target = last - 10 + replayed  # the nearest snapshot is at boundary last - 9 (after step last - 10)
        started = time.perf_counter()
        with_snapshots.rewind(target)
        print(f"rewind to step {target} ({replayed} steps replayed): {(time.perf_counter() - started) * 1000:.0f} ms")
        block(with_snapshots, last - target)  # back to where it was
    with_snapshots.close()
    without.close()


if __name__ == "__main__":
    main()
