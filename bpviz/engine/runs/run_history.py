"""A recording's History at one step: the record shown, and the time axes of the run up to it, read from the file.

The window draws every view from a History. A live run's History keeps its
recent records in memory; for a recording that would mean decoding a window
of records at every scrub (a second each at 60 layers). This one holds only
the record of the step shown; a view's time axis (`layer_steps`, and the
History series methods) is a query over the whole run up to that step,
statistics averaged over at most `max_points` buckets of steps and arrays
thinned to every k-th step. So a scrub decodes one record, the views read
only what they show, and the run's length bounds nothing but the bucket width.
"""

from __future__ import annotations

import numpy as np

from bpviz.engine.record.history import History
from bpviz.engine.record.records import Histogram, LayerStep, StepRecord
from bpviz.engine.runs.reader import Run


class RunHistory(History):
    """`run` as it stood after `record`'s step."""

    def __init__(self, run: Run, record: StepRecord, max_points: int, max_rows: int) -> None:
        super().__init__(max_steps=1)
        self.run = run
        self.step = record.step
        self.max_points = max_points  # buckets of a statistic's time axis
        self.max_rows = max_rows  # decoded rows of an array's (a heatmap's columns)
        buckets = run.buckets("loss", None, max_points, (0, record.step - 1))  # the step shown gets its exact loss
        self.loss_steps = buckets.steps.tolist()
        self.losses = buckets.mean.tolist()
        self.append(record)
        self._span = run.span(record.step)

    def span(self) -> tuple[int, int] | None:
        """The run's steps up to the one shown, from the file (this History holds only that step's record)."""
        return self._span

    def layer_steps(
        self, name: str, fields: tuple[str, ...] | None = None, last: int | None = None
    ) -> list[tuple[int, LayerStep]]:
        """(step, LayerStep) of layer `name` up to the step shown, holding `fields` only (None: all), over the whole
        run or its `last` steps, at most `max_points` buckets (`max_rows` rows for arrays); [] when the run has no such
        layer."""
        first = 0 if last is None else max(0, self.step - last + 1)
        try:
            return self.run.layer_steps(name, fields, (first, self.step), self.max_points, self.max_rows)
        except KeyError:
            return []

    def layer_series(self, name: str, attr: str) -> tuple[np.ndarray, np.ndarray]:
        buckets = self.run.buckets(attr, name, self.max_points, (0, self.step))
        return buckets.steps, buckets.mean

    def histogram_series(self, name: str, grad: bool = False) -> tuple[np.ndarray, np.ndarray, float, float] | None:
        kind = "gradient" if grad else "activation"
        found = self.run.histograms(name, kind, (0, self.step), self.max_rows)
        if found is None:
            return None
        steps, counts, lo, hi = found
        return steps, counts, float(lo[0]), float(hi[0])

    def histogram_at(self, name: str, grad: bool = False) -> tuple[int, Histogram] | None:
        try:
            return self.run.histogram_at(name, self.step, "gradient" if grad else "activation")
        except KeyError:
            return None

    def unit_activity_series(self, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        return self.run.unit_activity_series(name, (0, self.step), self.max_rows)
