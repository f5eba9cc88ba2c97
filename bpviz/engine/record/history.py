"""Bounded memory of past steps, and the time series views draw from it.

Full records (histograms, per-unit activity) are kept for the last
`Config.history_steps` steps; losses and validation points for every step, since
they are tiny and a loss curve must not lose its beginning.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from bpviz.engine.record.records import Histogram, StepRecord

# An undo's mark is the label of the remedy it took back after this prefix (the stepper writes it): the run file
# keeps only labels, so whether a remedy is still in force is read from them.
UNDO_PREFIX = "undo: "


def is_undo(label: str) -> bool:
    """Whether an intervention's label marks an undo rather than a remedy or hyperparameter change."""
    return label.startswith(UNDO_PREFIX)


class History:
    """The steps seen so far, oldest first."""

    def __init__(self, max_steps: int = 2000) -> None:
        self.records: deque[StepRecord] = deque(maxlen=max_steps)
        self.loss_steps: list[int] = []
        self.losses: list[float] = []
        self.validation: list[tuple[int, dict[str, float]]] = []  # (after step, metrics)
        self.interventions: list[tuple[int, str]] = []  # (first step it affects, label): remedies, hyperparameters
        # (step, label) of what else the time axes mark beside them (where a compared run diverges): no remedy,
        # so neither Undo nor the before/after of remedies counts it
        self.marks: list[tuple[int, str]] = []
        self._first: int | None = None  # the first step appended, kept when the window of records moves past it
        self._appended = 0

    def append(self, record: StepRecord) -> None:
        if self._first is None:
            self._first = record.step
        self._appended += 1
        self.records.append(record)
        if record.loss is not None:
            self.loss_steps.append(record.step)
            self.losses.append(record.loss)

    def before(self, step: int, marks_before: int | None = None) -> History:
        """A new History of the steps before `step`, and of the validations and interventions before
        `marks_before` (default: `step`): what a rewind keeps. New, so views that draw only what is new since
        they last looked see a history replaced and draw it whole."""
        marks_before = step if marks_before is None else marks_before
        kept = History(self.records.maxlen or 0)
        kept.records.extend(r for r in self.records if r.step < step)
        kept._appended = self._appended - sum(r.step >= step for r in self.records)
        kept._first = self._first if kept._appended > 0 else None
        pairs = [(s, loss) for s, loss in zip(self.loss_steps, self.losses) if s < step]
        kept.loss_steps, kept.losses = [s for s, _ in pairs], [loss for _, loss in pairs]
        kept.validation = [(s, dict(m)) for s, m in self.validation if s < marks_before]
        kept.interventions = [(s, label) for s, label in self.interventions if s < marks_before]
        return kept

    def remedies_in_force(self) -> int:
        """How many remedies (and hyperparameter changes) are applied and not undone: what Undo can take back.

        Undo takes back the latest one still applied, so each undo mark cancels one remedy before it; a rewind
        keeps the marks before its step (`before`), and with them the remedies it kept."""
        applied = 0
        for _, label in self.interventions:
            applied = max(0, applied - 1) if is_undo(label) else applied + 1
        return applied

    def add_validation(self, step: int, metrics: dict[str, float]) -> None:
        self.validation.append((step, dict(metrics)))

    @property
    def latest(self) -> StepRecord | None:
        return self.records[-1] if self.records else None

    def __len__(self) -> int:
        return len(self.records)

    def span(self) -> tuple[int, int] | None:
        """(first step, number of steps) of every step seen, not only the records kept (`max_steps` of them; a
        recording's History keeps one): what the findings judged. None before the first step."""
        return None if self._first is None else (self._first, self._appended)

    def layer_series(self, name: str, attr: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of one scalar LayerStep attribute.

        Steps where it is None or the layer is absent are skipped.
        """
        steps, values = [], []
        for record in self.records:
            layer = _find(record, name)
            value = None if layer is None else getattr(layer, attr)
            if value is not None:
                steps.append(record.step)
                values.append(float(value))
        return np.asarray(steps, dtype=np.int64), np.asarray(values, dtype=np.float64)

    def histogram_series(self, name: str, grad: bool = False) -> tuple[np.ndarray, np.ndarray, float, float] | None:
        """(steps, counts[steps, bins], lo, hi) of a layer's activation (or log10-gradient) histograms, or None."""
        steps, rows, bounds = [], [], None
        for record in self.records:
            layer = _find(record, name)
            hist = None if layer is None else (layer.grad_histogram if grad else layer.histogram)
            if hist is None:
                continue
            if bounds is None:
                bounds = (hist.lo, hist.hi)
            steps.append(record.step)
            rows.append(hist.counts)
        if bounds is None:
            return None
        return np.asarray(steps, dtype=np.int64), np.vstack(rows), bounds[0], bounds[1]

    def histogram_at(self, name: str, grad: bool = False) -> tuple[int, Histogram] | None:
        """The layer's most recent activation (or log10-gradient) histogram up to the latest step, with the step
        it was taken at; None when none is kept. On the economy level's plain steps a layer has none of its own."""
        for record in reversed(self.records):
            layer = _find(record, name)
            hist = None if layer is None else (layer.grad_histogram if grad else layer.histogram)
            if hist is not None:
                return record.step, hist
        return None

    def unit_activity_series(self, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(steps, activity[steps, units]) for a ReLU-family layer, or None for other layers."""
        steps, rows = [], []
        for record in self.records:
            layer = _find(record, name)
            if layer is not None and layer.unit_activity is not None:
                steps.append(record.step)
                rows.append(layer.unit_activity)
        if not rows or len({len(r) for r in rows}) != 1:
            return None
        return np.asarray(steps, dtype=np.int64), np.vstack(rows)


def _find(record: StepRecord, name: str):
    for layer in record.layers:
        if layer.name == name:
            return layer
    return None
