"""The redraw clock: the window draws at most 60 times a second, a few parts per tick, whatever the step rate.

Records only land in the run's History; a 16 ms timer redraws once something
new arrived, so a burst of fast steps costs one redraw, never one per step.
A redraw is drawn part by part (the table, the status bar, the findings, then
each visible plot of the PlotRegistry, docks included), as many parts per tick
as fit in TICK_BUDGET_S, so no single pause of the event loop is much longer
than the slowest part, and the window stays live. Qt paints between ticks: a
redraw drawn over several ticks shows, for a moment, its first parts at the
new step beside the others at the old one (during a fast Run, a status bar 90
steps ahead of the plots), so a redraw that fits the budget is drawn in one.
After a redraw that kept the GUI thread busy B seconds, the next waits 2·B.

Every part of one redraw shows the same step. The parts draw the History the
redraw began with (a followed recording replaces it as steps arrive), and new
records that would be appended to it in place while a redraw is half done wait
for its end (`between_redraws`): drawn as they came, the table, the status bar
and each plot of one frame showed steps up to eight apart during a fast Run.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer, Signal

from bpviz.engine.record.history import History
from bpviz.engine.record.records import StepRecord
from bpviz.engine.session.events import RunView
from bpviz.gui.plots.base import PlotRegistry
from bpviz.gui.window.debugger_page import PAGE_PARTS, DebuggerPage

REDRAW_MS = 16  # a tick: parts of a redraw are drawn at most 60 times a second
TICK_BUDGET_S = 0.008  # a tick draws parts until this long has gone (at least one part)
IDLE_PER_BUSY = 2.0  # after a redraw that kept the GUI thread busy B s (drawing + painting), wait 2·B before the next


class RedrawClock(QObject):
    """Paces the window's drawing; the latency benchmark reads its timings."""

    redrawn = Signal(int)  # step now shown by the table and the visible plots

    def __init__(
        self,
        parent: QObject,
        run: Callable[[], RunView],
        page: DebuggerPage,
        plots: PlotRegistry,
        draw_status: Callable[[StepRecord | None], None],
    ) -> None:
        super().__init__(parent)
        self._run = run
        self._page = page
        self._plots = plots
        self._draw_status = draw_status
        self.shown_step: int | None = None
        # How long each tick's slice of drawing took, and each whole redraw (all parts), and Qt's painting passes.
        self.redraw_seconds: deque[float] = deque(maxlen=10_000)
        # The GUI thread's CPU time in each slice: what the slice costs, without the waits of a loaded machine.
        self.redraw_cpu_seconds: deque[float] = deque(maxlen=10_000)
        self.cycle_seconds: deque[float] = deque(maxlen=10_000)
        self.paint_seconds: deque[float] = deque(maxlen=10_000)
        self._parts: list[str] = []  # parts of the redraw in progress
        self._cycle_history: History | None = None  # what every part of the redraw in progress draws
        self._held: list[Callable[[], None]] = []  # new data waiting for the redraw in progress to end
        self._cycle_step: int | None = None
        self._cycle_cost = 0.0  # seconds spent in this redraw's slices and in Qt's painting
        self._next_cycle_at = 0.0
        self._dirty = False
        self.tick_budget_s = TICK_BUDGET_S
        self.timer = QTimer(self)
        self.timer.setInterval(REDRAW_MS)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def mark_dirty(self) -> None:
        """Something new arrived: redraw at the next free tick."""
        self._dirty = True

    def between_redraws(self, apply: Callable[[], None]) -> None:
        """Run `apply` (which adds to the History being drawn) now, or once the redraw in progress is done."""
        if self._parts:
            self._held.append(apply)
        else:
            apply()

    def restart(self) -> None:
        """A new run: nothing of the old one is shown, and nothing is half drawn."""
        self.shown_step = None
        self._parts = []
        self.flush()
        self._dirty = True

    def flush(self) -> None:
        """Let in now what waits for the redraw in progress (it draws the rest of its parts as they were)."""
        held, self._held = self._held, []
        for apply in held:
            apply()
        if held:
            self._dirty = True

    def stop(self) -> None:
        self.timer.stop()

    def add_paint(self, seconds: float) -> None:
        """Qt spent `seconds` painting the window: it counts towards this redraw's cost."""
        self.paint_seconds.append(seconds)
        self._cycle_cost += seconds

    def timings(self) -> dict[str, deque[float]]:
        """Seconds per part of the latest redraws: the table, the findings, then each plot."""
        return {**self._page.part_seconds, **self._plots.timings}

    def redraw(self, force: bool = False) -> None:
        """Bring every widget up to the latest record now (all parts); a no-op unless something new arrived."""
        if not (self._dirty or force or self._parts or self._held):
            return
        self._parts = []  # all parts now, in one go: what waited for the half-done redraw goes in first
        self.flush()
        self._begin_cycle()
        while self._parts:
            self._draw_next_part()

    def _tick(self) -> None:
        """Parts of the current redraw, for up to `tick_budget_s`; a new redraw once something arrived.

        A heavy model's redraw (hundreds of layers) is paced so the GUI thread stays mostly idle:
        input and the window's own events never queue behind drawing.
        """
        if not self._parts and self._dirty and time.perf_counter() >= self._next_cycle_at:
            self._begin_cycle()
        until = time.perf_counter() + self.tick_budget_s
        while self._parts:
            self._draw_next_part()
            if time.perf_counter() >= until:
                break

    def _begin_cycle(self) -> None:
        self._dirty = False
        run = self._run()
        self._cycle_history = run.history
        latest = run.history.latest
        self._cycle_step = None if latest is None else latest.step
        self._cycle_cost = 0.0
        if latest is None:
            self._parts = ["status"]
            return
        self._plots.mark_stale()  # a view hidden now draws this when it is shown
        self._parts = self._page.begin_cycle(run.history, run.findings)
        self._parts.insert(1, "status")
        self._parts += [name for name in self._plots.visible() if name not in self._page.views]

    def _draw_next_part(self) -> None:
        started, cpu_started = time.perf_counter(), time.thread_time()
        part = self._parts.pop(0)
        history = self._cycle_history
        if part == "status":
            self._draw_status(history.latest)
        elif part in PAGE_PARTS or part in self._page.views:
            self._page.draw_part(part)
        else:
            self._plots.refresh(part, history)
        spent = time.perf_counter() - started
        self.redraw_seconds.append(spent)
        self.redraw_cpu_seconds.append(time.thread_time() - cpu_started)
        self._cycle_cost += spent
        if not self._parts:
            self.cycle_seconds.append(self._cycle_cost)
            self._next_cycle_at = time.perf_counter() + IDLE_PER_BUSY * self._cycle_cost
            if self._cycle_step is not None:
                self.shown_step = self._cycle_step
                self.redrawn.emit(self._cycle_step)
            self.flush()
