"""A recorded run seen as it stood at any one step: the `RunView` the window draws, filled from the run file.

The window draws every view from a RunView (History + findings). For a
recording the History is a `RunHistory`: the record of the chosen step, the
loss curve up to it, and time axes the views read from the file on demand
(bucketed to `max_points`), never a window of decoded records; findings,
validations and interventions are those the run had by then. So a scrub
decodes one record, memory does not grow with the run's length, and
scrubbing to step S shows exactly what the window showed at S.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from dataclasses import dataclass

from bpviz.engine.diagnosis.finding import Finding
from bpviz.engine.record.records import StepRecord
from bpviz.engine.runs.reader import Run
from bpviz.engine.runs.run_history import RunHistory
from bpviz.engine.session.events import RunView

MAX_POINTS = 2000  # points on a statistic's time axis: buckets of steps once the run is longer
MAX_ROWS = 500  # decoded arrays on a time axis (a heatmap's columns): every k-th step once the run is longer
_RECENT = 8  # records kept decoded, for stepping back and forth with the keyboard


@dataclass
class News:
    """What a run file gained since a live view was drawn: new records, and the validations, marks and findings now.

    The window's own training reads its steps from the file the experiment process records (one data path):
    a reader thread builds the News, the GUI thread only applies it.
    """

    records: list[StepRecord]
    validation: list[tuple[int, dict[str, float]]]
    interventions: list[tuple[int, str]]
    findings: list[Finding]

    def apply(self, view: RunView) -> None:
        """Bring `view` up to date in place (on the thread that draws it)."""
        for record in self.records:
            view.history.append(record)
        view.history.validation = self.validation
        view.history.interventions = self.interventions
        view.findings = self.findings


class Playback:
    """Views of `run` at a step; `refresh()` takes in what its writer committed since."""

    def __init__(self, run: Run, max_points: int = MAX_POINTS, max_rows: int = MAX_ROWS) -> None:
        self.run = run
        self.max_points = max_points
        self.max_rows = max_rows
        self._records: OrderedDict[int, StepRecord] = OrderedDict()
        self._validation: list[tuple[int, dict[str, float]]] | None = None
        self._interventions: list[tuple[int, str]] | None = None
        self.steps: list[int] = [int(s) for s in run.steps()]

    @property
    def last(self) -> int | None:
        """The latest recorded step (None before the first)."""
        return self.steps[-1] if self.steps else None

    def refresh(self) -> list[int]:
        """The steps committed since the last look (cheap: a query on new rows only); forgets the marks read, since
        a validation or a remedy comes without a new step."""
        new = [int(s) for s in self.run.new_steps()]
        self.steps += new
        self._validation = self._interventions = None
        return new

    def nearest(self, step: int) -> int:
        """The recorded step at or before `step` (the first one when `step` is earlier)."""
        index = bisect.bisect_right(self.steps, step) - 1
        return self.steps[max(index, 0)]

    def view_at(self, step: int | None = None) -> RunView:
        """The run as it stood after `step` (None: the latest): its record, losses, time axes, findings, marks."""
        view = RunView(1)
        if not self.steps:
            return view
        at = self.steps[-1] if step is None else self.nearest(step)
        view.history = RunHistory(self.run, self._record(at), self.max_points, self.max_rows)
        News([], *self._as_of(at)).apply(view)
        return view

    def live_view(self, max_steps: int) -> RunView:
        """A live view of the run's latest `max_steps` records, which `news` then brings up to date."""
        view = RunView(max_steps)
        if self.steps:
            self.news(self.steps[-max_steps:], self.steps[-1]).apply(view)
        return view

    def news(self, steps: list[int], at: int) -> News:
        """What a live view that ends before `steps` lacks to end at `at`: only reads, so another thread may do it."""
        return News([self.run.record(step) for step in steps], *self._as_of(at))

    def _as_of(self, at: int) -> tuple[list, list, list[Finding]]:
        """The validations, marks and findings a view ending at step `at` shows."""
        return (
            [(s, dict(m)) for s, m in self._validations() if s <= at],
            [(s, label) for s, label in self._marks() if s <= at + 1],  # +1: applied after `at`, acting from the next
            self.run.findings_at(at),
        )

    def extend(self, view: RunView, steps: list[int]) -> None:
        """Bring `view` to the latest of `steps` (committed after it), in place: a followed run's window keeps
        the same RunView object while its History moves on."""
        if steps:
            latest = self.view_at(steps[-1])
            view.history, view.findings = latest.history, latest.findings

    def _record(self, step: int) -> StepRecord:
        record = self._records.pop(step, None) or self.run.record(step)
        self._records[step] = record
        while len(self._records) > _RECENT:
            self._records.popitem(last=False)
        return record

    def _validations(self) -> list[tuple[int, dict[str, float]]]:
        if self._validation is None:
            self._validation = self.run.validation
        return self._validation

    def _marks(self) -> list[tuple[int, str]]:
        if self._interventions is None:
            self._interventions = self.run.interventions
        return self._interventions
