"""`open_run(path)`: a recorded run, read on demand, while it is still being written or long after.

Nothing is loaded up front but the small tables (meta, layer names): a
record, a series or a block of histograms is read when asked for, with a
coarser level of detail for long time axes (`max_points` buckets or strides
in SQL), so memory does not grow with the run's length. Every query is its
own short read transaction, so a follower never holds back the writer's WAL.
"""

from __future__ import annotations

import bisect
import fcntl
import json
import math
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np

from bpviz.engine.config import Config
from bpviz.engine.diagnosis.finding import Finding, worst_first
from bpviz.engine.observe.layer_graph import LayerGraph, LayerNode
from bpviz.engine.record.history import History
from bpviz.engine.record.records import Histogram, LayerStep, StepRecord
from bpviz.engine.report.data import build_report, cost_entry
from bpviz.engine.runs import branches, schema
from bpviz.engine.runs.codec import CodecError, decode_arrays
from bpviz.engine.runs.config_json import config_from_json
from bpviz.engine.runs.errors import RunFileError
from bpviz.engine.runs.rows import RowReader
from bpviz.engine.runs.shape import BOOL, INTEGER, NESTED, REAL, nan_set
from bpviz.engine.runs.writer import writer_in_this_process

SQLITE_MAGIC = b"SQLite format 3\x00"
_LAYERS = next(c for c in schema.CHILDREN if c.field == "layers")
SERIES_FIELDS = tuple(f.name for f in _LAYERS.shape.fields if f.kind in (REAL, INTEGER, BOOL))
_ARRAYS = {"activation": "histogram_counts", "gradient": "grad_histogram_counts"}
_AGGREGATES = {"avg": "mean", "min": "min", "max": "max"}
# the columns of each LayerStep field (a histogram has several); a row always needs the key, shape and order
_LAYER_COLUMNS = {
    f.name: [f"{f.name}_{c}" for c, _ in f.inner.columns()] if f.kind == NESTED else [f.name]
    for f in _LAYERS.shape.fields
    if f.name not in _LAYERS.key_fields
}
_ALWAYS = ("step", "layer_id", "shape", "order", "nan")
_DECODED_LIMIT = 8192  # LayerSteps of heatmap rows a reader keeps decoded
_AVERAGES_LIMIT = 256  # bucketed time axes (a series or a layer's fields at one bucket width) a reader keeps
_HOLDING_LIMIT = 64  # (layer, array columns) whose rows holding them a reader keeps the steps of


@dataclass(frozen=True)
class Buckets:
    """A statistic in buckets of `width` steps: each bucket's first step, mean, min, max and number of values."""

    steps: np.ndarray
    mean: np.ndarray
    min: np.ndarray
    max: np.ndarray
    count: np.ndarray
    width: int


def open_run(path: str | Path, branch: int = branches.MAIN) -> Run:
    """Open a run file for reading; RunFileError (what, which file, what to do) when it is not a readable run.

    A run that was rewound has several branches (`Run.branches()`); `branch` picks the one read, the run as
    first trained by default."""
    return Run(path, branch)


class Run:
    """A run file opened for reading. `refresh()` picks up steps its writer committed since."""

    def __init__(self, path: str | Path, branch: int = branches.MAIN) -> None:
        self.path = Path(path)
        self.branch = branch
        _check_file(self.path)
        self._lock_fd: int | None = None
        try:
            uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
            self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            self._conn.execute("PRAGMA busy_timeout = 2000")
            self._check_format()
            self._show_branch()
            self.meta = dict(self._conn.execute("SELECT key, value FROM meta"))
            self._rows = RowReader(self._conn)
            self._steps_seen = self._last_step()
            self._decoded: dict[tuple[int, int, tuple[str, ...]], LayerStep] = {}
            self._averages: dict[tuple, tuple[int, list[tuple[int, LayerStep]]]] = {}
            self._holding: dict[tuple, tuple[int, np.ndarray, np.ndarray]] = {}
            self._buckets: dict[tuple, tuple[int, list[tuple]]] = {}
        except sqlite3.DatabaseError as error:
            raise _damaged(self.path, error) from None
        self._returned = self._steps_seen

    # --- the file as a whole -----------------------------------------------------------------

    def branches(self) -> list[branches.Branch]:
        """Every branch of the run, oldest first (one, unless it was rewound), as the file has them now."""
        return self._guarded(branches.branches, self._conn)

    def _show_branch(self) -> None:
        """Make this connection read `self.branch` (see bpviz.engine.runs.branches)."""
        known = [b.id for b in branches.branches(self._conn)]
        if self.branch not in known:
            raise RunFileError(
                f"the run has no branch {self.branch}",
                self.path,
                f"its branches are {', '.join(map(str, known))}",
                "pick one of those",
            )
        branches.show_branch(self._conn, self.branch)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __len__(self) -> int:
        """Number of recorded steps (as of the last refresh)."""
        if self._steps_seen < 0:
            return 0
        return self._query("SELECT count(*) FROM steps WHERE step <= ?", (self._steps_seen,))[0][0]

    @property
    def config(self) -> Config:
        """The settings the run was recorded with."""
        return config_from_json(self.meta["config"]) if "config" in self.meta else Config()

    @property
    def graph(self) -> LayerGraph | None:
        """The layers' data flow as recorded in the first step (None before it)."""
        self._refresh_meta()
        text = self.meta.get("graph")
        if text is None:
            return None
        data = json.loads(text)
        nodes = [
            LayerNode(n["name"], n["type"], n["family"], tuple(n["module_path"]), n["order"]) for n in data["nodes"]
        ]
        return LayerGraph(nodes, [tuple(e) for e in data["edges"]])

    def writer_alive(self) -> bool:
        """Whether a process still records into this file (holds its lock): "live" rather than "writer stopped"."""
        if writer_in_this_process(self.path):
            return True
        if self._lock_fd is None:
            try:
                self._lock_fd = os.open(self.path, os.O_RDONLY)
            except OSError:
                return False
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        return False

    @property
    def status(self) -> str:
        """ "live" (being written), "finished", or "writer stopped" (it ended without finishing: a crash or a kill)."""
        if self.writer_alive():
            return "live"
        self._refresh_meta()
        return "finished" if self.meta.get("status") == "finished" else "writer stopped"

    # --- following a live run ----------------------------------------------------------------

    def refresh(self) -> int:
        """Look for steps committed since the last look; returns how many appeared."""
        last = self._last_step()
        new = self._query("SELECT count(*) FROM steps WHERE step > ? AND step <= ?", (self._steps_seen, last))[0][0]
        self._steps_seen = last
        return new

    def new_steps(self) -> list[int]:
        """The step numbers committed since the previous call (or since opening), oldest first."""
        self.refresh()
        steps = [
            r[0]
            for r in self._query(
                "SELECT step FROM steps WHERE step > ? AND step <= ? ORDER BY step", (self._returned, self._steps_seen)
            )
        ]
        self._returned = self._steps_seen
        return steps

    # --- steps -------------------------------------------------------------------------------

    def steps(self) -> np.ndarray:
        """Every recorded step number (int64), oldest first."""
        rows = self._query("SELECT step FROM steps WHERE step <= ? ORDER BY step", (self._steps_seen,))
        return np.asarray([r[0] for r in rows], dtype=np.int64)

    def span(self, upto: int) -> tuple[int, int] | None:
        """(first step, number of steps) of the recorded steps up to `upto`; None when there are none."""
        sql = "SELECT min(step), count(*) FROM steps WHERE step <= ?"
        first, count = self._query(sql, (min(upto, self._steps_seen),))[0]
        return None if count == 0 else (int(first), int(count))

    def record(self, step: int) -> StepRecord:
        """The StepRecord of `step`, equal to the one `w.step()` returned; KeyError when the file has no such step."""
        try:
            record = self._rows.record(step)
        except (sqlite3.DatabaseError, CodecError) as error:
            raise _damaged(self.path, error) from None
        if record is None:
            raise KeyError(f"step {step} is not in {self.path} ({len(self)} steps recorded)")
        return record

    def records(self, start: int = 0, stop: int | None = None) -> Iterator[StepRecord]:
        """The records of steps start <= step < stop, read one at a time."""
        for step in self.steps():
            if step >= start and (stop is None or step < stop):
                yield self.record(int(step))

    def layer_names(self) -> list[str]:
        """The layers of the latest step, in forward order."""
        rows = self._query(
            "SELECT DISTINCT layers.name FROM layer_steps JOIN layers USING (layer_id) WHERE step = ? ORDER BY seq",
            (self._steps_seen,),
        )
        return [r[0] for r in rows]

    # --- series for plots (bounded by max_points) ----------------------------------------------

    def loss_series(self, max_points: int | None = None, upto: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(steps, losses) up to step `upto` (None: the end); with `max_points`, the mean of each of that many
        step buckets."""
        buckets = self.buckets("loss", None, max_points, (0, self._upto(upto)))
        return buckets.steps, buckets.mean

    def layer_series(
        self, layer: str, field: str, max_points: int | None = None, agg: str = "avg"
    ) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of one LayerStep statistic; `max_points` buckets (agg: avg, min or max per bucket)."""
        if agg not in _AGGREGATES:
            raise ValueError(f"agg must be avg, min or max, got {agg!r}")
        buckets = self.buckets(field, layer, max_points)
        return buckets.steps, getattr(buckets, _AGGREGATES[agg])

    def buckets(
        self,
        field: str,
        layer: str | None = None,
        max_points: int | None = None,
        step_range: tuple[int, int] | None = None,
    ) -> Buckets:
        """A statistic over steps in at most `max_points` buckets of equal width, each with its first step, mean,
        min, max and count, in one query: `loss` (layer None) or a LayerStep field of `layer`. Without
        `max_points`, or when the steps fit, a bucket per step. NaN values are left out (SQLite keeps them as NULL)."""
        if layer is None:
            table, where, args = "steps", "1", ()
            if field != "loss":
                raise ValueError(f"the run-wide series is 'loss', not {field!r}")
        else:
            if field not in SERIES_FIELDS:
                raise ValueError(f"no statistic {field!r}; the series are {', '.join(SERIES_FIELDS)}")
            table, (where, args) = "layer_steps", self._layer_where(layer)
        lo, hi = step_range if step_range is not None else (0, self._steps_seen)
        hi = min(hi, self._steps_seen)
        where = f'{where} AND "{field}" IS NOT NULL AND step BETWEEN ? AND ?'
        width = self._bucket_width(table, where, (*args, lo, hi), max_points)
        sql = (
            f'SELECT min(step), avg("{field}"), min("{field}"), max("{field}"), count(*) FROM {table} '
            f"WHERE {where} GROUP BY (step - ?) / ? ORDER BY 1"
        )
        rows = self._bucket_rows(sql, args, lo, hi, width)
        columns = list(zip(*rows)) or [(), (), (), (), ()]
        steps, mean, low, high, count = (np.asarray(c, dtype=np.float64) for c in columns)
        return Buckets(steps.astype(np.int64), mean, low, high, count.astype(np.int64), width)

    def _bucket_rows(self, sql: str, args: tuple, lo: int, hi: int, width: int) -> list[tuple]:
        """The rows of bucket query `sql` (its last parameters: first step, last step, `lo`, `width`) over steps
        [lo, hi]. The buckets that ended by `hi` are kept, so a scrub (or following the run) reads only the buckets
        it has not read before and the one `hi` cuts short: a bucket is never split between two queries, so its
        mean is the one a single query gives."""
        key = (sql, args, lo, width)
        done, rows = self._buckets.get(key, (lo - 1, []))
        complete = lo + (hi - lo + 1) // width * width - 1  # the last step of the last bucket that ends by `hi`
        if complete > done:
            rows = rows + self._query(sql, (*args, done + 1, complete, lo, width))
            done = complete
            if len(self._buckets) >= _AVERAGES_LIMIT:
                self._buckets.clear()
            self._buckets[key] = (done, rows)
        found = rows[: bisect.bisect_right([row[0] for row in rows], complete)]
        if hi > complete:
            found = found + self._query(sql, (*args, complete + 1, hi, lo, width))
        return found

    def layer_steps(
        self,
        layer: str,
        fields: tuple[str, ...] | None = None,
        step_range: tuple[int, int] | None = None,
        max_points: int | None = None,
        max_rows: int | None = None,
    ) -> list[tuple[int, LayerStep]]:
        """(step, LayerStep) of one layer over `step_range`, oldest first, reading only `fields` (None: every one;
        the others keep their defaults). Statistics alone are averaged over at most `max_points` buckets of steps
        (each named by its first step); anything with arrays or histograms is every k-th step, at most `max_rows`
        of them (default `max_points`): each is decoded, so a heatmap gets as many columns as it can show."""
        lo, hi = step_range if step_range is not None else (0, self._steps_seen)
        chosen = [f for f in _LAYERS.shape.fields if f.name in _LAYER_COLUMNS and (fields is None or f.name in fields)]
        arrays = [_LAYER_COLUMNS[f.name][0] for f in chosen if f.kind not in (REAL, INTEGER, BOOL)]
        columns = [c for f in chosen for c in _LAYER_COLUMNS[f.name] if c not in _ALWAYS]
        try:
            if arrays:
                keys = self._every_kth(self._layer_ids(layer), tuple(arrays), lo, hi, max_rows or max_points)
                return self._decoded_rows(keys, columns)
            span = min(hi, self._steps_seen) - lo + 1  # steps, not rows: no count query for a bucket width
            width = 1 << max(0, math.ceil(math.log2(span / max_points))) if max_points and span > max_points else 1
            layer_where, layer_args = self._layer_where(layer)
            if lo > 0:
                return self._averaged(layer_where, layer_args, columns, width, lo, min(hi, self._steps_seen))
            return self._averaged_from_start(layer_where, layer_args, columns, width, min(hi, self._steps_seen))
        except (sqlite3.DatabaseError, CodecError) as error:
            raise _damaged(self.path, error) from None

    def histograms(
        self,
        layer: str,
        kind: str = "activation",
        step_range: tuple[int, int] | None = None,
        max_points: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """(steps, counts[steps, bins], lo[steps], hi[steps]) of a layer's activation or log10-gradient histograms,
        every k-th step when more than `max_points` lie in `step_range` (inclusive); None when it has none.
        A layer's edges widen when its values leave them, so each row comes with its own."""
        column = _ARRAYS.get(kind)
        if column is None:
            raise ValueError(f"kind must be one of {', '.join(_ARRAYS)}, got {kind!r}")
        prefix = column[: -len("_counts")]
        rows = self._array_rows(layer, column, f", {prefix}_lo, {prefix}_hi", step_range, max_points)
        if not rows:
            return None
        bounds = np.asarray([(r[2], r[3]) for r in rows], dtype=np.float64)
        counts = np.vstack(self._decode(rows, column))
        return _steps_of(rows), counts, bounds[:, 0], bounds[:, 1]

    def histogram_at(self, layer: str, step: int, kind: str = "activation") -> tuple[int, Histogram] | None:
        """The layer's latest activation or log10-gradient histogram at or before `step`, with the step it was
        taken at; None when there is none. An economy run takes histograms on its detailed steps only, and a
        heatmap's columns are thinned to every k-th of those, so neither the record at `step` nor a heatmap's
        last column need hold it."""
        column = _ARRAYS.get(kind)
        if column is None:
            raise ValueError(f"kind must be one of {', '.join(_ARRAYS)}, got {kind!r}")
        try:
            steps, layer_ids = self._rows_holding(self._layer_ids(layer), (column,))
            index = int(np.searchsorted(steps, step, "right")) - 1
            if index < 0:
                return None
            field = column[: -len("_counts")]  # the LayerStep field whose counts the column holds
            found = self._decoded_rows([(int(steps[index]), int(layer_ids[index]))], _LAYER_COLUMNS[field])
        except (sqlite3.DatabaseError, CodecError) as error:
            raise _damaged(self.path, error) from None
        if not found:
            return None
        taken, item = found[-1]
        hist = getattr(item, field)
        return (taken, hist) if hist is not None else None

    def unit_activity_series(
        self, layer: str, step_range: tuple[int, int] | None = None, max_points: int | None = None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """(steps, activity[steps, units]) of a ReLU-family layer (strided like `histograms`), or None.

        Steps where the layer had another unit count are left out, so the rows line up."""
        rows = self._array_rows(layer, "unit_activity", "", step_range, max_points)
        arrays = self._decode(rows, "unit_activity")
        if not arrays:
            return None
        keep = [i for i, a in enumerate(arrays) if a.shape == arrays[-1].shape]
        return _steps_of(rows)[keep], np.vstack([arrays[i] for i in keep])

    def _array_rows(self, layer: str, column: str, extra: str, step_range, max_points) -> list[tuple]:
        """(step, blob, *extra, layer_id) rows of one blob column of a layer, every k-th to stay within `max_points`."""
        lo, hi = step_range if step_range is not None else (0, self._steps_seen)
        keys = self._every_kth(self._layer_ids(layer), (column,), lo, hi, max_points)
        found = {}
        for layer_id, chunk in _by_layer(keys):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT step, {column}{extra}, layer_id FROM layer_steps WHERE layer_id = ? AND step IN ({marks})"
            found.update(((row[0], row[-1]), row) for row in self._query(sql, (layer_id, *chunk)))
        return [found[key] for key in keys if key in found]

    def _averaged(
        self, where: str, args: tuple, columns: list[str], width: int, lo: int, hi: int
    ) -> list[tuple[int, LayerStep]]:
        """LayerSteps of `columns` averaged over buckets of `width` steps (from step 0 on) within [lo, hi]."""
        mean = "avg" if width > 1 else ""  # a bucket of one step keeps its value (and its type) as it is
        averaged = "".join(f', {mean}("{c}") AS "{c}"' for c in columns)
        nans = "max(nan) AS nan" if width == 1 else "NULL AS nan"  # a mean leaves NaN out, as SQL does
        sql = (
            'SELECT min(step) AS step, max(layer_id) AS layer_id, max(shape) AS shape, max("order") AS "order"'
            f", {nans}{averaged} FROM layer_steps WHERE {where} AND step BETWEEN ? AND ? GROUP BY step / ? ORDER BY 1"
        )
        names, rows = self._rows.table(sql, (*args, lo, hi, width))
        return [(row[0], item) for row, item in zip(rows, self._rows.items(_LAYERS, names, rows, _only(columns)))]

    def _averaged_from_start(
        self, where: str, args: tuple, columns: list[str], width: int, hi: int
    ) -> list[tuple[int, LayerStep]]:
        """`_averaged` from step 0 to `hi`: the buckets that ended by then are kept, so scrubbing (or following
        the run) reads only the buckets it has not read before and the one `hi` cuts short."""
        key = (where, args, tuple(columns), width)
        done, pairs = self._averages.get(key, (-1, []))
        complete = (hi + 1) // width * width - 1  # the last step of the last bucket that ends by `hi`
        if complete > done:
            pairs = pairs + self._averaged(where, args, columns, width, done + 1, complete)
            done = complete
            if len(self._averages) >= _AVERAGES_LIMIT:
                self._averages.clear()
            self._averages[key] = (done, pairs)
        found = pairs[: bisect.bisect_right([step for step, _ in pairs], complete)]
        if hi > complete:
            found = found + self._averaged(where, args, columns, width, complete + 1, hi)
        return found

    def _decoded_rows(self, keys: list[tuple[int, int]], columns: list[str]) -> list[tuple[int, LayerStep]]:
        """The LayerSteps (of `columns` only) at (step, layer_id) `keys`, decoding only those not decoded lately:
        scrubbing redraws the same heatmap columns, since every k-th step stays the same rows for a while."""
        fields = tuple(columns)
        missing = [key for key in keys if (*key, fields) not in self._decoded]
        for layer_id, chunk in _by_layer(missing):
            picked = ", ".join(f'"{c}"' for c in (*_ALWAYS, *columns))
            marks = ",".join("?" * len(chunk))
            names, rows = self._rows.table(
                f"SELECT {picked} FROM layer_steps WHERE layer_id = ? AND step IN ({marks})", (layer_id, *chunk)
            )
            for row, item in zip(rows, self._rows.items(_LAYERS, names, rows, _only(columns))):
                self._decoded[(row[0], layer_id, fields)] = item
        while len(self._decoded) > _DECODED_LIMIT:
            self._decoded.pop(next(iter(self._decoded)))
        return [(key[0], self._decoded[(*key, fields)]) for key in keys if (*key, fields) in self._decoded]

    def _every_kth(
        self, ids: tuple[int, ...], columns: tuple[str, ...], lo: int, hi: int, max_points: int | None
    ) -> list[tuple[int, int]]:
        """(step, layer_id) of every k-th row of layers `ids` within steps [lo, hi] that holds any of `columns`
        (counted in step order, so sparse rows such as detailed steps' histograms are thinned evenly), k the power
        of two that gives at most `max_points` rows (a power of two: as the run grows or the step shown moves, the
        rows picked stay the same ones)."""
        steps, layer_ids = self._rows_holding(ids, columns)
        first, last = np.searchsorted(steps, lo, "left"), np.searchsorted(steps, min(hi, self._steps_seen), "right")
        count = int(last - first)
        stride = 1 << max(0, math.ceil(math.log2(count / max_points))) if max_points and count > max_points else 1
        return list(zip(steps[first:last:stride].tolist(), layer_ids[first:last:stride].tolist()))

    def _rows_holding(self, ids: tuple[int, ...], columns: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """(steps, layer ids), in step order, of the rows of layers `ids` that hold any of `columns`, up to the last
        step seen: read from the file once, then only for the steps committed since. Telling which of a layer's
        10,000 rows hold a histogram reads every one of them, which a scrub would otherwise do for each heatmap."""
        empty = (-1, np.empty(0, np.int64), np.empty(0, np.int32))  # 12 bytes a row: 1.2 MB for 100,000 steps
        done, steps, layer_ids = self._holding.get((ids, columns), empty)
        if self._steps_seen > done:
            present = " OR ".join(f'"{c}" IS NOT NULL' for c in columns)
            sql = (
                f"SELECT step, layer_id FROM layer_steps WHERE layer_id IN ({','.join('?' * len(ids))}) "
                f"AND step BETWEEN ? AND ? AND ({present}) ORDER BY step, layer_id"
            )
            rows = np.asarray(self._query(sql, (*ids, done + 1, self._steps_seen)), dtype=np.int64).reshape(-1, 2)
            steps = np.concatenate([steps, rows[:, 0]])
            layer_ids = np.concatenate([layer_ids, rows[:, 1].astype(np.int32)])
            if len(self._holding) >= _HOLDING_LIMIT:
                self._holding.clear()
            self._holding[ids, columns] = (self._steps_seen, steps, layer_ids)
        return steps, layer_ids

    # --- findings, validation, interventions ---------------------------------------------------

    @property
    def findings(self) -> list[Finding]:
        """Every finding as it stood at the end of the recording, worst first."""
        return self.findings_at(None)

    def findings_at(self, step: int | None) -> list[Finding]:
        """The findings as they stood after `step` (None: the latest), worst first."""
        where, args = ("", ()) if step is None else ("WHERE at_step <= ?", (step,))
        cursor = self._conn.execute(f"SELECT * FROM findings {where} ORDER BY id", args)
        names = [d[0] for d in cursor.description]
        latest: dict[tuple, dict] = {}
        for row in cursor:
            values = dict(zip(names, row))
            latest[(values["kind"], values["layer"])] = values
        return worst_first(self._rows.finding(row, step) for row in latest.values())

    @property
    def validation(self) -> list[tuple[int, dict[str, float]]]:
        """(after step, metrics) of every validation run."""
        return [(step, metrics) for step, _, metrics in self._events("validation")]

    @property
    def interventions(self) -> list[tuple[int, str]]:
        """(first step it affects, label) of every remedy and hyperparameter change."""
        return [(step, label) for step, label, _ in self._events("intervention")]

    def forwards_after(self) -> dict[int | None, list]:
        """The no-grad forwards (validation) judged after each step, for judging the run again."""
        result: dict[int | None, list] = {}
        for step, _, passes in self._events("forwards"):
            result.setdefault(step, []).extend(passes)
        return result

    def unmeasured(self) -> list[str]:
        """What bpviz failed to measure during the run."""
        self._refresh_meta()
        if "unmeasured" in self.meta:
            return json.loads(self.meta["unmeasured"])
        sql = "SELECT unmeasured FROM steps WHERE step <= ? ORDER BY step DESC LIMIT 1"
        row = self._query(sql, (self._steps_seen,))
        return json.loads(row[0][0]) if row and row[0][0] else []

    def report(self) -> dict:
        """The dict `bpviz check --json` writes, for the recorded run as it was judged while recording."""
        history = History(1)
        if len(self):
            history.records.append(self.record(self._steps_seen))
        history.loss_steps, history.losses = self._losses()
        history.validation = self.validation
        return build_report(history, self.findings, len(self), self.unmeasured(), cost=self.cost())

    def cost(self) -> dict:
        """What watching cost while recording, summed over every recorded step as the Watcher sums it."""
        rows = self._query(
            "SELECT COUNT(*), COALESCE(SUM(detailed), 0), COALESCE(SUM(overhead_s), 0), COALESCE(SUM(step_s), 0) "
            "FROM steps WHERE step <= ? AND step_s > 0",
            (self._steps_seen,),
        )
        steps, detailed, spent, wall = rows[0]
        return cost_entry(self.config.level, int(steps), int(detailed), float(spent), float(wall))

    # --- internals ---------------------------------------------------------------------------

    def _losses(self) -> tuple[list[int], list[float]]:
        steps, losses = [], []
        sql = "SELECT step, loss, nan FROM steps WHERE step <= ? ORDER BY step"
        for step, loss, nan in self._query(sql, (self._steps_seen,)):
            if "loss" in nan_set(nan):
                loss = math.nan
            if loss is not None:
                steps.append(step)
                losses.append(loss)
        return steps, losses

    def _bucket_width(self, table: str, where: str, args: tuple, max_points: int | None) -> int:
        """Steps per bucket so that the steps matching `where` fill at most `max_points` buckets (1: every step)."""
        if not max_points:
            return 1
        first, last, count = self._query(f"SELECT min(step), max(step), count(*) FROM {table} WHERE {where}", args)[0]
        if not count or count <= max_points:
            return 1
        return math.ceil((last - first + 1) / max_points)

    def _layer_where(self, layer: str) -> tuple[str, tuple[int, ...]]:
        ids = self._layer_ids(layer)
        return f"layer_id IN ({','.join('?' * len(ids))})", ids

    def _upto(self, step: int | None) -> int:
        return self._steps_seen if step is None else min(step, self._steps_seen)

    def _decode(self, rows: list[tuple], column: str) -> list[np.ndarray]:
        """The arrays of (step, blob, ..., layer_id) rows of `column`, decoded together."""
        try:
            coders = [self._rows.arrays(_LAYERS.rows, row[-1]) for row in rows]
            return decode_arrays([row[1] for row in rows], [coder.base(column) for coder in coders])
        except (sqlite3.DatabaseError, CodecError) as error:
            raise _damaged(self.path, error) from None

    def _events(self, kind: str) -> list[tuple[int | None, str | None, object]]:
        rows = self._query("SELECT step, label, payload FROM events WHERE kind = ? ORDER BY id", (kind,))
        return [(step, label, None if blob is None else self._rows.unpacker.unpack(blob)) for step, label, blob in rows]

    def _layer_ids(self, layer: str) -> tuple[int, ...]:
        ids = tuple(r[0] for r in self._query("SELECT layer_id FROM layers WHERE name = ?", (layer,)))
        if not ids:
            raise KeyError(f"no layer {layer!r} in {self.path}; layers are {self.layer_names()}")
        return ids

    def _last_step(self) -> int:
        row = self._query("SELECT max(step) FROM steps", ())[0][0]
        return -1 if row is None else row

    def _refresh_meta(self) -> None:
        self.meta = dict(self._query("SELECT key, value FROM meta", ()))

    def _query(self, sql: str, args: tuple) -> list[tuple]:
        return self._guarded(lambda: self._conn.execute(sql, args).fetchall())

    def _guarded(self, read, *args):
        try:
            return read(*args)
        except sqlite3.DatabaseError as error:
            raise _damaged(self.path, error) from None

    def _check_format(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if not schema.is_run(self._conn):
            raise RunFileError(
                "not a bpviz run",
                self.path,
                "it is an SQLite database, but not one bpviz recorded",
                "open a .bpviz file written by bpviz.watch(record=...) or bpviz check --record",
            )
        if version > schema.FORMAT_VERSION:
            raise RunFileError(
                "the run file is from a newer bpviz",
                self.path,
                f"it has format version {version}; this bpviz reads format versions up to {schema.FORMAT_VERSION}",
                "update bpviz (pip install -U bpviz) to open it",
            )


def _only(columns: list[str]) -> frozenset[str]:
    """The LayerStep fields behind `columns`, with those every LayerStep needs."""
    return frozenset(name for name, found in _LAYER_COLUMNS.items() if set(found) & {*columns, "shape", "order"})


def _by_layer(keys: list[tuple[int, int]], chunk: int = 500) -> Iterator[tuple[int, list[int]]]:
    """(layer_id, steps) groups of (step, layer_id) keys, at most `chunk` steps each (one query's parameters)."""
    steps: dict[int, list[int]] = {}
    for step, layer_id in keys:
        steps.setdefault(layer_id, []).append(step)
    for layer_id, found in steps.items():
        for start in range(0, len(found), chunk):
            yield layer_id, found[start : start + chunk]


def _steps_of(rows: list[tuple]) -> np.ndarray:
    return np.asarray([r[0] for r in rows], dtype=np.int64)


def _check_file(path: Path) -> None:
    """Fail early, in words, on what SQLite would report as a bare 'unable to open database file'."""
    if not path.exists():
        raise RunFileError("no such run file", path, "the file does not exist", "check the path")
    if path.is_dir():
        raise RunFileError("not a run file", path, "it is a folder", "give one .bpviz file inside it")
    try:
        with open(path, "rb") as handle:
            header = handle.read(100)
    except PermissionError:
        raise RunFileError(
            "cannot read the run file",
            path,
            "permission denied",
            "ask its owner for read access, or copy it somewhere you can read",
        ) from None
    except OSError as error:
        raise RunFileError("cannot read the run file", path, error.strerror or str(error), "check the file") from None
    if not header.startswith(SQLITE_MAGIC):
        empty = "" if header else " (the file is empty)"
        raise RunFileError(
            "not a bpviz run",
            path,
            "it is not an SQLite database" + empty,
            "open a .bpviz file written by bpviz.watch(record=...) or bpviz check --record",
        )
    if len(header) == 100:
        page_size = int.from_bytes(header[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size
        pages = int.from_bytes(header[28:32], "big")
        size = path.stat().st_size
        if size % page_size or size < pages * page_size:
            raise RunFileError(
                "the run file is damaged",
                path,
                f"it is truncated: {size} bytes where its header promises {pages * page_size}",
                "copy it again from its source; a file cut short cannot be read back",
            )


def _damaged(path: Path, error: Exception) -> RunFileError:
    return RunFileError(
        "the run file is damaged",
        path,
        f"SQLite could not read it ({error})",
        "copy it again from its source; `sqlite3 FILE .recover` may save the steps that are intact",
    )
