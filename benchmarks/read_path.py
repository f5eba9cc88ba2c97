"""Reading a run file as the window's reader thread does: CPU ms to decode one step's StepRecord, at 61 and 302 layers.

Two deep MLPs (benchmarks/recording.py's) are recorded at the full level
(histograms and unit activity every step: the window's level), then every
step is read in order by a freshly opened reader, as the thread that follows
the experiment process's run file reads each new step, `--repeats` times.
Time is `time.process_time` (CPU time of this process), so other work on a
shared machine moves it less than wall time. With `--against COMMIT` the
same files are read by that commit's bpviz in a child process (its tree
exported with `git archive` into a temporary folder), and both are printed
side by side.

    python3 benchmarks/read_path.py [--against COMMIT] [--steps 40] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import checkout

LAYERS = (60, 300)  # the deep MLP's observed layers: 61 and 302 once the head and input layers count


def decode_ms(path: Path, repeats: int) -> list[float]:
    """CPU milliseconds of each `record(step)`, every step in order, each repeat with a fresh reader."""
    import bpviz

    times = []
    for _ in range(repeats):
        with bpviz.open_run(path) as run:
            for step in run.steps().tolist():
                start = time.process_time()
                run.record(step)
                times.append((time.process_time() - start) * 1e3)
    return times


def measured_by(commit: str, paths: list[Path], repeats: int) -> list[list[float]]:
    """`decode_ms` of each file by `commit`'s bpviz, in a child process that imports it first."""
    tree = Path(tempfile.mkdtemp(prefix="bpviz-read-"))
    archive = subprocess.run(["git", "archive", commit, "bpviz"], cwd=checkout.ROOT, capture_output=True, check=True)
    with tempfile.TemporaryFile() as handle:
        handle.write(archive.stdout)
        handle.seek(0)
        tarfile.open(fileobj=handle).extractall(tree, filter="data")
    command = [sys.executable, __file__, "--tree", str(tree), "--repeats", str(repeats), "--measure", *map(str, paths)]
    return json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


def summary(times: list[float]) -> str:
    p95 = statistics.quantiles(times, n=20)[-1]
    return f"median {statistics.median(times):6.2f} ms, p95 {p95:6.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", help="a commit to measure beside this checkout (e.g. main)")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tree", help=argparse.SUPPRESS)  # the child: import bpviz from this folder
    parser.add_argument("--measure", nargs="+", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        sys.path.insert(0, args.tree)
        print(json.dumps([decode_ms(path, args.repeats) for path in args.measure]))
        return
    from recording import record_deep

    folder = Path(tempfile.mkdtemp(prefix="bpviz-bench-"))
    paths, widths = [], []
    for layers in LAYERS:
        path = folder / f"deep{layers}.bpviz"
        widths.append(len(record_deep(layers, args.steps, path, fresh=True, level="full")[-1].layers))
        paths.append(path)
    here = [decode_ms(path, args.repeats) for path in paths]
    there = measured_by(args.against, paths, args.repeats) if args.against else None
    for i, (width, path) in enumerate(zip(widths, paths)):
        line = f"{width:3d} layers, full level ({path.stat().st_size / args.steps / 1024:.0f} KiB/step): "
        line += f"this checkout {summary(here[i])}"
        if there is not None:
            ratio = statistics.median(there[i]) / statistics.median(here[i])
            line += f"; {args.against}: {summary(there[i])}; {ratio:.1f}x faster"
        print(line)


if __name__ == "__main__":
    main()
