"""Incremental per-layer time series for the views.

`History.layer_series` and friends walk every record on every call, which is
too slow at screen rate with hundreds of layers and thousands of steps. A
`LayerTrace` keeps one layer's values in a rolling numpy buffer and, on each
refresh, reads only the records newer than the last one it saw; when the
history was replaced or restarted (a Reset: steps begin again at 0) it rebuilds.
A recording's History (`RunHistory`) holds one record: there the trace asks
it for the layer's whole time axis up to the step shown, once per History,
reading from the file only the fields its extract declares (`reads`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bpviz.engine.record.history import History
from bpviz.engine.record.records import LayerStep, StepRecord
from bpviz.engine.runs.run_history import RunHistory

DEFAULT_CAPACITY = 2000  # steps kept when a history does not bound its records

# What a view last drew before it drew anything: unlike None (an empty history's latest record), it
# differs from every record, so a refresh after a new model or a reset always redraws.
UNDRAWN = object()

Extract = Callable[[LayerStep], "float | np.ndarray | None"]


def reads(*fields: str) -> Callable[[Extract], Extract]:
    """Declare the LayerStep fields an extract function reads, so a recording's trace reads only those columns."""

    def mark(extract: Extract) -> Extract:
        extract.fields = fields
        return extract

    return mark


class RollingBuffer:
    """The newest `capacity` rows of a growing series, appended in place without reallocating."""

    def __init__(self, capacity: int, row_shape: tuple[int, ...] = (), dtype=np.float64) -> None:
        self.capacity = max(int(capacity), 1)
        self.row_shape = tuple(row_shape)
        # twice the capacity, so appends are amortised O(rows): the tail is moved to the front only when full
        self._store = np.empty((2 * self.capacity, *self.row_shape), dtype=dtype)
        self._start = 0
        self._end = 0

    def __len__(self) -> int:
        return self._end - self._start

    @property
    def data(self) -> np.ndarray:
        """A view of the kept rows, oldest first."""
        return self._store[self._start : self._end]

    def clear(self) -> None:
        self._start = self._end = 0

    def append(self, rows: np.ndarray) -> None:
        """Append rows (shape (n, *row_shape)); the oldest fall off past capacity."""
        rows = np.asarray(rows)
        n = len(rows)
        if n == 0:
            return
        if n >= self.capacity:
            self._store[: self.capacity] = rows[-self.capacity :]
            self._start, self._end = 0, self.capacity
            return
        if self._end + n > len(self._store):
            keep = min(len(self), self.capacity - n)
            self._store[:keep] = self._store[self._end - keep : self._end]
            self._start, self._end = 0, keep
        self._store[self._end : self._end + n] = rows
        self._end += n
        if len(self) > self.capacity:
            self._start = self._end - self.capacity


class RecordCursor:
    """Which records of a History a view has already consumed."""

    def __init__(self) -> None:
        self._history: History | None = None
        self._last: StepRecord | None = None

    def invalidate(self) -> None:
        """Forget what was consumed, so the next `advance` rebuilds."""
        self._history = None
        self._last = None

    def advance(self, history: History) -> tuple[bool, list[StepRecord]]:
        """(rebuild, records to consume, oldest first); rebuild means drop everything consumed so far."""
        records = history.records
        rebuild = history is not self._history or self._last is None
        new: list[StepRecord] = []
        if not rebuild:
            for record in reversed(records):
                if record.step <= self._last.step:
                    # the record we stopped at must be the one we last consumed; otherwise steps restarted
                    rebuild = record is not self._last
                    break
                new.append(record)
            new.reverse()
        if rebuild:
            new = list(records)
        self._history = history
        if new:
            self._last = new[-1]
        elif rebuild:
            self._last = None
        return rebuild, new


def find_layer(record: StepRecord, name: str, hint: int = -1) -> LayerStep | None:
    """The layer called `name` in `record`, trying index `hint` first (layers keep their order between steps)."""
    layers = record.layers
    if 0 <= hint < len(layers) and layers[hint].name == name:
        return layers[hint]
    for layer in layers:
        if layer.name == name:
            return layer
    return None


def layer_index(record: StepRecord | None, name: str | None) -> int:
    """Position of layer `name` in `record.layers`, or -1."""
    if record is None or name is None:
        return -1
    for i, layer in enumerate(record.layers):
        if layer.name == name:
            return i
    return -1


class LayerTrace:
    """One layer's per-step values (a scalar or a row), like `History.layer_series`, kept up to date incrementally.

    Steps where the layer is absent or `extract` gives None are skipped, as History does. It keeps as many
    steps as the history does, or only the newest `limit` when given.
    """

    def __init__(self, name: str, extract: Extract, limit: int | None = None) -> None:
        self.name = name
        self._extract = extract
        self._limit = limit
        self._cursor = RecordCursor()
        self._hint = -1
        self._steps = RollingBuffer(1, dtype=np.int64)
        self._values: RollingBuffer | None = None
        self._run: RunHistory | None = None  # the recording's History the values were read from

    @property
    def steps(self) -> np.ndarray:
        return self._steps.data

    @property
    def values(self) -> np.ndarray:
        """Shape (steps,) for scalars, (steps, width) for rows."""
        if self._values is None:
            return np.empty(0)
        return self._values.data

    def __len__(self) -> int:
        return len(self._steps)

    def update(self, history: History) -> bool:
        """Consume the records `history` gained since the last call; True when the values changed."""
        if isinstance(history, RunHistory):
            return self._read_run(history)
        self._run = None
        rebuild, records = self._cursor.advance(history)
        capacity = min((c for c in (history.records.maxlen, self._limit) if c), default=DEFAULT_CAPACITY)
        if rebuild:
            self._steps = RollingBuffer(capacity, dtype=np.int64)
            self._values = None
        found = []
        for record in records:
            layer = find_layer(record, self.name, self._hint)
            if layer is not None:
                self._hint = layer.order if layer.order < len(record.layers) else -1
                found.append((record.step, layer))
        return self._take(found, capacity) or rebuild

    def _read_run(self, history: RunHistory) -> bool:
        """The layer's time axis up to the step a recording's History shows, read once per History."""
        if history is self._run:
            return False
        self._run = history
        self._cursor.invalidate()
        found = history.layer_steps(self.name, getattr(self._extract, "fields", None), self._limit)
        self._steps = RollingBuffer(max(len(found), 1), dtype=np.int64)
        self._values = None
        self._take(found, max(len(found), 1))
        return True

    def _take(self, found: list[tuple[int, LayerStep]], capacity: int) -> bool:
        """Append the extracted values of (step, layer) pairs; True when there were any."""
        steps, rows = [], []
        for step, layer in found:
            value = self._extract(layer)
            if value is not None:
                steps.append(step)
                rows.append(value)
        if rows:
            self._append(np.asarray(steps, dtype=np.int64), rows, capacity)
        return bool(rows)

    def _append(self, steps: np.ndarray, rows: list, capacity: int) -> None:
        if np.ndim(rows[0]) == 0:
            block = np.asarray(rows, dtype=np.float64)
        else:
            # a row of a new width (e.g. a layer that changed size) restarts the series from that row on
            width = len(rows[-1])
            first = len(rows) - 1
            while first > 0 and len(rows[first - 1]) == width:
                first -= 1
            if self._values is not None and self._values.row_shape != (width,):
                self._values = None
                self._steps.clear()
            steps, rows = steps[first:], rows[first:]
            block = np.vstack(rows).astype(np.float64, copy=False)
        if self._values is None:
            self._values = RollingBuffer(capacity, block.shape[1:])
        self._steps.append(steps)
        self._values.append(block)
