"""A recorded run seen as it stood at any one step: the `RunView` the window draws, filled from the run file.

The window draws every view from a RunView (History + findings). For a
recording that view is built here, never by loading the whole run: the
History holds only a window of full records ending at the chosen step
(re-read one record per step moved, since neighbours stay cached), the loss
curve is the file's bucketed series before that window and the exact losses
inside it, and findings, validations and interventions are those the run had
by then. So memory is bounded by `window` and `max_points`, not by the run's
length, and scrubbing to step S shows exactly what the window showed at S.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

from bpviz.engine.diagnosis.finding import Finding
from bpviz.engine.record.records import StepRecord
from bpviz.engine.runs.reader import Run
from bpviz.engine.session.events import RunView

WINDOW = 200  # full records behind the shown step: the per-layer traces' time axis
MAX_POINTS = 2000  # loss points before that window (buckets of steps once the run is longer)


@dataclass
class News:
    """What a run file gained since a view was drawn: new records, and the validations, marks and findings now."""

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

    def __init__(self, run: Run, window: int = WINDOW, max_points: int = MAX_POINTS) -> None:
        self.run = run
        self.window = window
        self.max_points = max_points
        self._records: dict[int, StepRecord] = {}
        self._coarse_loss: tuple[np.ndarray, np.ndarray] | None = None
        self._validation: list[tuple[int, dict[str, float]]] | None = None
        self._interventions: list[tuple[int, str]] | None = None
        self.steps: list[int] = [int(s) for s in run.steps()]

    @property
    def last(self) -> int | None:
        """The latest recorded step (None before the first)."""
        return self.steps[-1] if self.steps else None

    def refresh(self) -> list[int]:
        """The steps committed since the last look (cheap: a query on new rows only); forgets series that grew."""
        new = [int(s) for s in self.run.new_steps()]
        if new:
            self.steps += new
            self._coarse_loss = None
        self._validation = self._interventions = None  # a validation or a remedy comes without a new step
        return new

    def nearest(self, step: int) -> int:
        """The recorded step at or before `step` (the first one when `step` is earlier)."""
        index = bisect.bisect_right(self.steps, step) - 1
        return self.steps[max(index, 0)]

    def view_at(self, step: int | None = None) -> RunView:
        """The run as it stood after `step` (None: the latest): its last `window` records, losses, findings, marks."""
        view = RunView(self.window)
        if not self.steps:
            return view
        end = len(self.steps) if step is None else bisect.bisect_right(self.steps, step)
        shown = self.steps[max(0, end - self.window) : max(end, 1)]
        records = self._read(shown)
        history = view.history
        coarse_steps, coarse_losses = self._coarse()
        before = int(np.searchsorted(coarse_steps, shown[0]))
        history.loss_steps = [int(s) for s in coarse_steps[:before]]
        history.losses = [float(v) for v in coarse_losses[:before]]
        for record in records:
            history.append(record)
        self.news([], shown[-1]).apply(view)
        return view

    def extend(self, view: RunView, steps: list[int]) -> None:
        """Append the records of `steps` (committed after `view`'s latest) to `view` in place.

        A followed run's views then consume only the new records, instead of rebuilding from a new view at
        every poll. Without new steps, the validations, marks and findings are brought up to date.
        """
        latest = view.history.latest
        at = steps[-1] if steps else None if latest is None else latest.step
        if at is not None:
            self.news(steps, at).apply(view)

    def news(self, steps: list[int], at: int) -> News:
        """What a view that ends before `steps` lacks to end at `at`: only reads, so another thread may do it."""
        return News(
            [self.run.record(step) for step in steps],
            [(s, dict(m)) for s, m in self._validations() if s <= at],
            [(s, label) for s, label in self._marks() if s <= at + 1],  # +1: applied after `at`, acting from the next
            self.run.findings_at(at),
        )

    def _read(self, steps: list[int]) -> list[StepRecord]:
        """The records of `steps`, reading only those not read for the previous view; keeps just these."""
        records = {s: self._records.get(s) or self.run.record(s) for s in steps}
        self._records = records
        return list(records.values())

    def _coarse(self) -> tuple[np.ndarray, np.ndarray]:
        if self._coarse_loss is None:
            self._coarse_loss = self.run.loss_series(self.max_points)
        return self._coarse_loss

    def _validations(self) -> list[tuple[int, dict[str, float]]]:
        if self._validation is None:
            self._validation = self.run.validation
        return self._validation

    def _marks(self) -> list[tuple[int, str]]:
        if self._interventions is None:
            self._interventions = self.run.interventions
        return self._interventions
