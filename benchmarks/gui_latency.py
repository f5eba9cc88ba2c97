"""How responsive the window stays while it trains as fast as it can.

Builds an experiment with ~300 leaf layers, opens it in the real window (the
same experiment process, run file and redraw clock a person uses), presses
Run, and meanwhile:

* a 10 ms QTimer on the GUI thread notes how late each tick fires
  (interval between ticks minus 10 ms) — the window's input latency;
* the window notes how long each redraw (table + findings + visible plots) takes;
* the client notes how long reading each new step from the run file takes
  on a reader thread (the window reads what it draws from the file its experiment
  process records).

Targets: p95 lateness < 50 ms, p95 redraw < 16 ms.

Then it opens an experiment whose build() is a loop of pure-Python work and
prints the timer's lateness during the load: the loop runs in the experiment
process, so it never holds the interpreter lock the GUI thread needs.

    QT_QPA_PLATFORM=offscreen python benchmarks/gui_latency.py [--seconds 15] [--profile] [--sort "Grad norm"]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import checkout  # noqa: F401  (before bpviz: this checkout's copy)
import numpy as np
from PySide6.QtCore import QEventLoop, QSettings, Qt, QTimer

from bpviz.gui.app import make_application
from bpviz.gui.panels.layer_table import COLUMNS
from bpviz.gui.window.main_window import MainWindow
from bpviz.gui.window.settings import Settings

EXPERIMENT = """
import torch
from torch import nn

BLOCKS = {blocks}  # each block: Linear, LayerNorm, ReLU -> 3 leaf layers


def build():
    torch.manual_seed(0)
    width = 32
    layers = []
    for _ in range(BLOCKS):
        layers += [nn.Linear(width, width), nn.LayerNorm(width), nn.ReLU()]
    model = nn.Sequential(nn.Linear(16, width), *layers, nn.Linear(width, 4))
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(32, 16, generator=g), torch.randint(4, (32,), generator=g)) for _ in range(8)]
    return {{"model": model, "train_data": data, "optimizer": torch.optim.SGD(model.parameters(), lr=0.01)}}
"""


def percentiles(values: list[float]) -> tuple[float, float, float]:
    """(p50, p95, max) in milliseconds."""
    if not values:
        return (float("nan"),) * 3
    ms = np.asarray(values) * 1000.0
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95)), float(ms.max())


def wait_for(signal, timeout_ms: int = 120_000) -> None:
    """Spin the event loop until `signal` fires (or the timeout)."""
    loop = QEventLoop()

    def quit(*_args) -> None:  # a signal with arguments does not reach QEventLoop.quit directly
        loop.quit()

    signal.connect(quit)
    QTimer.singleShot(timeout_ms, loop.quit)
    loop.exec()
    signal.disconnect(quit)


SPIN_BUILD = """
import time
import torch
from torch import nn


def build():
    end = time.perf_counter() + {seconds}
    total = 0
    while time.perf_counter() < end:  # pure-Python work: holds the interpreter lock
        total += sum(i * i for i in range(200))
    model = nn.Linear(4, 2)
    data = [(torch.randn(8, 4), torch.randint(2, (8,)))]
    return {{"model": model, "train_data": data, "optimizer": torch.optim.SGD(model.parameters(), lr=0.01)}}
"""


def lateness_during_build(tmp: Path, seconds: float) -> tuple[float, float, float]:
    """The 10 ms timer's lateness (p50, p95, max in ms) while a pure-Python build() of `seconds` runs."""
    experiment = tmp / "spin_build.py"
    experiment.write_text(SPIN_BUILD.format(seconds=seconds))
    settings = Settings(QSettings(str(tmp / f"spin-{seconds}.ini"), QSettings.Format.IniFormat))
    window = MainWindow(settings=settings, remember_layout=False)
    window.show()
    window.code_trust.trusted.trust_for_session(experiment)
    ticks: list[float] = []
    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    window.open_path(experiment)
    wait_for(window.loaded)
    timer.stop()
    window.close()
    return percentiles([max(b - a - 0.010, 0.0) for a, b in zip(ticks, ticks[1:])])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="how long to train (default 15)")
    parser.add_argument(
        "--blocks", type=int, default=100, help="Linear+LayerNorm+ReLU blocks (default 100: 302 leaf layers)"
    )
    parser.add_argument(
        "--build-seconds", type=float, default=5.0, help="length of the pure-Python build() (default 5)"
    )
    parser.add_argument("--profile", action="store_true", help="profile the GUI thread and print the top functions")
    parser.add_argument(
        "--sort", default=None, help='sort the layer table by this column while it trains (e.g. "Grad norm")'
    )
    args = parser.parse_args()

    make_application()
    tmp = Path(tempfile.mkdtemp(prefix="bpviz-latency-"))
    experiment = tmp / "deep_mlp.py"
    experiment.write_text(textwrap.dedent(EXPERIMENT.format(blocks=args.blocks)))
    window = MainWindow(
        settings=Settings(QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat)), remember_layout=False
    )
    window.resize(1600, 960)
    window.show()

    window.code_trust.trusted.trust_for_session(experiment)
    window.open_path(experiment)
    wait_for(window.loaded)
    if window.controller.request is None:
        print("the benchmark experiment failed to load:", window.error_panel.text(), file=sys.stderr)
        return 2

    if args.sort is not None:  # a column whose values change every step re-sorts the rows at every redraw
        window.page.table.sortByColumn([c.title for c in COLUMNS].index(args.sort), Qt.SortOrder.DescendingOrder)

    ticks: list[float] = []
    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))

    profiler = cProfile.Profile() if args.profile else None
    window.clock.redraw_seconds.clear()
    window.clock.redraw_cpu_seconds.clear()
    window.clock.cycle_seconds.clear()
    window.clock.paint_seconds.clear()
    window.controller.client.read_seconds.clear()
    for seconds in window.clock.timings().values():
        seconds.clear()
    started = time.perf_counter()
    window.run()
    timer.start()
    if profiler:
        profiler.enable()
    stop = QTimer()
    stop.setSingleShot(True)
    stop.timeout.connect(window.pause)
    stop.start(int(args.seconds * 1000))
    wait_for(window.run_finished, timeout_ms=int(args.seconds * 1000) + 120_000)
    if profiler:
        profiler.disable()
    elapsed = time.perf_counter() - started
    timer.stop()

    steps = len(window.history.loss_steps)
    layers = len(window.history.latest.layers) if window.history.latest else 0
    lateness = [max(b - a - 0.010, 0.0) for a, b in zip(ticks, ticks[1:])]
    redraws = list(window.clock.redraw_seconds)
    late = percentiles(lateness)
    draw = percentiles(redraws)
    cpu = percentiles(list(window.clock.redraw_cpu_seconds))
    cycle = percentiles(list(window.clock.cycle_seconds))
    print(f"model: {layers} observed layers, {steps} steps in {elapsed:.1f} s ({steps / elapsed:.1f} steps/s)")
    print(
        f"10 ms timer lateness: p50 {late[0]:.1f} ms, p95 {late[1]:.1f} ms, max {late[2]:.1f} ms"
        f"  ({len(lateness)} ticks)"
    )
    print(
        f"redraw slice (1 tick): p50 {draw[0]:.1f} ms, p95 {draw[1]:.1f} ms, max {draw[2]:.1f} ms"
        f"  ({len(redraws)} slices)"
    )
    print(
        f"  its GUI-thread CPU:  p50 {cpu[0]:.1f} ms, p95 {cpu[1]:.1f} ms, max {cpu[2]:.1f} ms"
        "  (the same slices without waiting for the CPU or the interpreter lock)"
    )
    print(
        f"whole redraw (sum):    p50 {cycle[0]:.1f} ms, p95 {cycle[1]:.1f} ms, max {cycle[2]:.1f} ms  "
        f"({len(window.clock.cycle_seconds)} redraws; includes Qt's painting passes)"
    )
    paint = percentiles(list(window.clock.paint_seconds))
    print(
        f"Qt paint pass:         p50 {paint[0]:.1f} ms, p95 {paint[1]:.1f} ms, max {paint[2]:.1f} ms"
        f"  ({len(window.clock.paint_seconds)} passes)"
    )
    print("parts (refresh calls, painting excluded):")
    for part, seconds in window.clock.timings().items():
        p50, p95, worst = percentiles(list(seconds))
        print(f"  {part:14s}       p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {worst:.1f} ms  ({len(seconds)} calls)")
    read = percentiles(list(window.controller.client.read_seconds))
    print(
        f"reading new steps from the run file (off the GUI thread): p50 {read[0]:.1f} ms, p95 {read[1]:.1f} ms,"
        f" max {read[2]:.1f} ms"
        f"  ({len(window.controller.client.read_seconds)} reads)"
    )
    ok = late[1] < 50.0 and draw[1] < 16.0
    print("targets (p95 lateness < 50 ms, p95 redraw < 16 ms):", "met" if ok else "MISSED")
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
        print(out.getvalue())
    window.close()
    # the experiment processes' server starts once (importing torch): warm it up so the load measures build() only
    lateness_during_build(tmp, 0.0)
    p50, p95, worst = lateness_during_build(tmp, args.build_seconds)
    print(f"during a {args.build_seconds:.0f} s pure-Python build(), 10 ms timer lateness:")
    print(f"  p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {worst:.1f} ms")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
