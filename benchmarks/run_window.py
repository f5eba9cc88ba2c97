"""The window on long recordings: time to the first full window, time per scrub, and memory against run length.

A 60-layer run of `--steps` steps (recorded steps of benchmarks/recording.py's
deep MLP written again under new step numbers) is opened in the real window
(offscreen): the first figure is open_path until every part is drawn once;
then the timeline is moved to random steps and each redraw is timed. Memory:
the Python heap's peak (tracemalloc) while opening and drawing runs of a
small model that differ only in length, and how much the process's resident
memory grew from before opening each to after (run shortest first, so a
later run cannot reuse what an earlier one left).

    QT_QPA_PLATFORM=offscreen python3 benchmarks/run_window.py [--steps 10000] [--lengths 1000,10000,100000]
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

import checkout  # noqa: F401  (before bpviz: this checkout's copy)
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication
from recording import long_run, record_deep

from bpviz.gui.app import make_application
from bpviz.gui.window.main_window import MainWindow
from bpviz.gui.window.settings import Settings


def window(folder: Path) -> MainWindow:
    shown = MainWindow(
        settings=Settings(QSettings(str(folder / "settings.ini"), QSettings.Format.IniFormat)), remember_layout=False
    )
    shown.resize(1600, 960)
    shown.show()
    QApplication.processEvents()
    return shown


def first_window(path: Path, folder: Path) -> tuple[float, MainWindow]:
    """Seconds from open_path to every part drawn (and painted) once."""
    shown = window(folder)
    start = time.perf_counter()
    assert shown.open_path(path)
    shown.redraw(force=True)
    QApplication.processEvents()
    return time.perf_counter() - start, shown


def scrubs(shown: MainWindow, count: int) -> list[float]:
    steps = shown.timeline.steps
    times = []
    for step in random.Random(0).sample(list(steps), min(count, len(steps))):
        start = time.perf_counter()
        shown.timeline.go_to(step)
        shown.redraw(force=True)
        QApplication.processEvents()
        times.append(time.perf_counter() - start)
        assert shown.shown_step == step
    return times


def resident_mib() -> float:
    """This process's resident memory now (Linux), MiB."""
    with open("/proc/self/status") as status:
        kib = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return kib / 1024


def memory(path: Path, folder: Path) -> tuple[float, float]:
    """MiB of Python heap at its peak while the recording is opened, drawn and scrubbed to its middle, and the
    growth of resident memory from before opening to after (the window still open)."""
    gc.collect()
    before = resident_mib()
    tracemalloc.start()
    _, shown = first_window(path, folder)
    shown.timeline.go_to(shown.timeline.steps[len(shown.timeline.steps) // 2])
    shown.redraw(force=True)
    QApplication.processEvents()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    gc.collect()
    grown = resident_mib() - before
    shown.close()
    return peak / 2**20, grown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--scrubs", type=int, default=50)
    parser.add_argument("--lengths", default="1000,10000,100000", help="run lengths for the memory figure")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bpviz-bench-"))
    os.environ.setdefault("BPVIZ_RUNS_DIR", str(folder / "runs"))
    make_application()

    sixty = record_deep(60, 50, folder / "deep60.bpviz")
    path = folder / "long60.bpviz"
    long_run(sixty, args.steps, path)
    seconds, shown = first_window(path, folder)
    print(
        f"{args.steps}-step recording of a {len(sixty[-1].layers)}-layer model "
        f"({path.stat().st_size / 2**20:.0f} MiB): first full window in {seconds:.2f} s"
    )
    times = scrubs(shown, args.scrubs)
    print(
        f"scrub to a random step and redraw everything shown: median {statistics.median(times) * 1e3:.0f} ms, "
        f"max {max(times) * 1e3:.0f} ms ({len(times)} scrubs)"
    )
    shown.close()

    small = record_deep(6, 20, folder / "deep6.bpviz")
    for length in (int(n) for n in args.lengths.split(",")):
        run = folder / f"small{length}.bpviz"
        long_run(small, length, run)
        heap, resident = memory(run, folder)
        print(
            f"{length:>7}-step run of a {len(small[-1].layers)}-layer model ({run.stat().st_size / 2**20:.0f} MiB): "
            f"peak Python heap while opening, drawing and scrubbing {heap:.1f} MiB, resident memory grown by "
            f"{resident:.1f} MiB"
        )


if __name__ == "__main__":
    main()
