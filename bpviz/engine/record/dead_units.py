"""Which units of ReLU-family layers are dead: silent on every sample over a window of recent steps.

A unit that is silent for one batch may just be selective; one silent for
several consecutive steps gets no gradient and will not recover by itself.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from bpviz.engine.record.records import StepRecord


class DeadUnitTracker:
    """Keeps, per layer, which units fired in each of the last `window` steps."""

    def __init__(self, window: int) -> None:
        self.window = window
        self._fired: dict[str, deque[np.ndarray]] = {}
        self._counts: dict[str, np.ndarray] = {}  # per unit: steps of the window in which it fired
        self.dead_since: dict[str, np.ndarray] = {}  # per unit: first step of its current silent streak, -1 if alive

    def update(self, layer: str, step: int, fired: np.ndarray) -> np.ndarray:
        """Record this step's per-unit firing (bool) and return the indices of dead units."""
        history = self._fired.get(layer)
        if history is None or (history and len(history[0]) != len(fired)):
            history = self._fired[layer] = deque(maxlen=self.window)
            self._counts[layer] = np.zeros(len(fired), dtype=np.int64)
            self.dead_since[layer] = np.full(len(fired), -1, dtype=np.int64)
        counts = self._counts[layer]
        if len(history) == history.maxlen:  # the oldest step leaves the window (kept as a count, not re-reduced)
            counts -= history[0]
        history.append(fired)
        counts += fired
        since = self.dead_since[layer]
        since[fired] = -1
        since[(~fired) & (since < 0)] = step
        return np.flatnonzero(counts == 0)

    def steps_seen(self, layer: str) -> int:
        """How many steps of the window are filled for `layer`."""
        return len(self._fired.get(layer, ()))


def mark_dead_units(record: StepRecord, tracker: DeadUnitTracker) -> None:
    """Advance `tracker` with a freshly collected step and set each unit-tracked layer's dead units on it.

    A ReLU-family unit's output is positive exactly where its input is: the
    input's maximum, read over the whole batch, says whether it fired; the
    positive counts (`unit_activity`) may come from part of the batch.
    """
    for layer in record.layers:
        if layer.unit_preact_max is None and layer.unit_activity is None:
            continue
        preact = layer.unit_preact_max
        fired = preact > 0 if preact is not None else layer.unit_activity > 0
        dead = tracker.update(layer.name, record.step, fired)
        layer.dead_units = len(dead)
        layer.dead_unit_ids = dead
        layer.dead_since = tracker.dead_since[layer.name][dead]  # kept with the step: a recording tells it too
