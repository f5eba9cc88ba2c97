"""Follow lag: how long after a user's script took a step the window following its run file shows it.

A child process trains recording.py's deep MLP (60 layers) with
`bpviz.watch(record=...)`, one step every `--interval` seconds, while the
real window (offscreen) follows the file as a person would have opened it.
Each step's lag is from the `wall_time` its record holds (taken in `w.step`,
before the writer thread commits it) to the first redraw showing that step or
a later one; the median, 95th percentile and maximum are printed. The goal:
within 1 s of the commit, 200 ms aimed at (the window looks five times a
second).

    QT_QPA_PLATFORM=offscreen python3 benchmarks/follow_lag.py [--steps 100] [--interval 0.1]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import checkout  # noqa: F401  (before bpviz: this checkout's copy)
from PySide6.QtWidgets import QApplication
from run_window import window

from bpviz.gui.app import make_application

WRITER = """
import sys, time
sys.path.insert(0, {benchmarks!r})
import checkout, torch, torch.nn.functional as F, bpviz
from recording import deep_mlp
torch.manual_seed(0)
model = deep_mlp(60)
x, y = torch.randn(128, 32), torch.randint(0, 10, (128,))
opt = torch.optim.SGD(model.parameters(), lr=0.05)
with bpviz.watch(model, record=sys.argv[1]) as w:
    for _ in range({steps}):
        started = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        w.step(loss)
        time.sleep(max(0.0, {interval} - (time.perf_counter() - started)))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0.1, help="seconds from one step of the script to the next")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bpviz-bench-"))
    os.environ.setdefault("BPVIZ_RUNS_DIR", str(folder / "runs"))
    make_application()
    path = folder / "followed.bpviz"
    script = WRITER.format(benchmarks=str(Path(__file__).resolve().parent), steps=args.steps, interval=args.interval)
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), str(path)])
    shown_at: list[tuple[float, int]] = []  # (wall time, step) of each redraw while following
    try:
        while not (path.exists() and _committed(path)):
            time.sleep(0.01)  # waiting for another process's first commit: nothing in this one to wait on
        shown = window(folder)
        shown.clock.redrawn.connect(lambda step: shown_at.append((time.time(), step)))
        assert shown.open_path(path)
        while child.poll() is None or shown.recording.state == "live":
            QApplication.processEvents()
            time.sleep(0.002)
    finally:
        child.kill()
        child.wait()
    taken = dict(_wall_times(path))
    first = shown_at[0][1] if shown_at else 0  # steps before the window opened are not followed
    lags = []
    for step, wall in sorted(taken.items()):
        if step <= first:
            continue
        seen = next((t for t, s in shown_at if s >= step), None)
        if seen is not None:
            lags.append(seen - wall)
    lags.sort()
    p95 = lags[int(0.95 * (len(lags) - 1))]
    print(
        f"{len(lags)} steps of a 61-layer run followed, one every {args.interval * 1e3:.0f} ms: lag from w.step to "
        f"the window showing it median {statistics.median(lags) * 1e3:.0f} ms, p95 {p95 * 1e3:.0f} ms, "
        f"max {lags[-1] * 1e3:.0f} ms"
    )


def _committed(path: Path) -> bool:
    """Whether the run file holds a step already (read with plain SQL, as any reader may)."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT count(*) FROM steps").fetchone()[0] > 0
    except sqlite3.Error:
        return False


def _wall_times(path: Path) -> list[tuple[int, float]]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT step, wall_time FROM steps ORDER BY step").fetchall()


if __name__ == "__main__":
    main()
