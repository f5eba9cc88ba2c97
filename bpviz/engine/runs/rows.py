"""A StepRecord to rows of the run file and back, exactly: the reader's record equals the one the writer was given."""

from __future__ import annotations

import sqlite3

from bpviz.engine.diagnosis.finding import Finding
from bpviz.engine.record.records import ForwardPass, Histogram, LayerStep, ParamStep, StepRecord
from bpviz.engine.runs import schema
from bpviz.engine.runs.codec import Packer, Unpacker, build
from bpviz.engine.runs.keyframes import KeyframeReader, KeyframeWriter
from bpviz.engine.runs.shape import NAN_COLUMN, PLAIN, ArrayCoder, getter, nan_set, nan_text

# the only types a packed blob may build: reading a run never instantiates anything else
CLASSES = {cls.__name__: cls for cls in (StepRecord, LayerStep, ParamStep, ForwardPass, Histogram, Finding)}


class RowWriter:
    """Writes records into an open run file; keeps the name and string tables it has filled in memory."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._strings: dict[str, int] = {}
        self._keys: dict[str, dict[tuple, int]] = {child.field: {} for child in schema.CHILDREN}
        self.packer = Packer(self._intern)
        self._inserts: dict[tuple[str, tuple[str, ...]], str] = {}
        self._children = [(child, getter(child.key_fields) if child.keys else None) for child in schema.CHILDREN]
        self._finding_rows: dict[tuple, int] = {}  # each finding's latest row
        self._frames = KeyframeWriter()

    def step(self, record: StepRecord, extras: dict[str, float | None]) -> None:
        """Insert one step's rows (the caller commits)."""
        row, nans = schema.STEP.to_row(record, self.packer, arrays=self._frames.coder("steps", None, record.step))
        row.update((name, value) for name, value in extras.items() if value is not None)
        self._insert("steps", [_with_nans(row, nans)])
        for child, key_of in self._children:
            rows = []
            for seq, item in enumerate(getattr(record, child.field)):
                arrays, key = PLAIN, None
                if key_of is not None:
                    key = self._key(child, key_of(item))
                    arrays = self._frames.coder(child.rows, key, record.step)
                item_row, item_nans = child.shape.to_row(item, self.packer, skip=child.key_fields, arrays=arrays)
                item_row["step"], item_row["seq"] = record.step, seq
                if key is not None:
                    item_row[child.key_id] = key
                rows.append(_with_nans(item_row, item_nans))
            if rows:
                self._insert(child.rows, rows)

    def finding(self, at_step: int | None, finding: Finding) -> None:
        """A finding raised or changed at `at_step`."""
        row, nans = schema.FINDING.to_row(finding, self.packer)
        if at_step is not None:
            row["at_step"] = at_step
        self._insert("findings", [_with_nans(row, nans)])
        self._finding_rows[finding.key] = self.conn.execute("SELECT last_insert_rowid()").fetchone()[0]

    def finding_held(self, at_step: int, finding: Finding) -> None:
        """A finding that held again at `at_step` with nothing else changed (its last_step is that step)."""
        self.conn.execute("INSERT INTO finding_held VALUES (?, ?)", (at_step, self._finding_rows[finding.key]))

    def event(self, step: int | None, kind: str, label: str | None, payload: object = None) -> None:
        blob = None if payload is None else self.packer.pack(payload)
        sql = "INSERT INTO events(step, kind, label, payload) VALUES (?, ?, ?, ?)"
        self.conn.execute(sql, (step, kind, label, blob))

    def _insert(self, table: str, rows: list[dict]) -> None:
        """Each row names the columns it sets (the others are NULL): one statement per list of columns."""
        for row in rows:
            self.conn.execute(self._statement(table, tuple(row)), tuple(row.values()))

    def _statement(self, table: str, columns: tuple[str, ...]) -> str:
        found = self._inserts.get((table, columns))
        if found is None:
            names = ", ".join(f'"{c}"' for c in columns)
            found = self._inserts[table, columns] = (
                f"INSERT INTO {table}({names}) VALUES ({', '.join('?' * len(columns))})"
            )
        return found

    def _key(self, child: schema.ChildTable, values: tuple) -> int:
        known = self._keys[child.field]
        key = known.get(values)
        if key is None:
            names = ", ".join(f'"{k}"' for k in child.key_fields)
            cursor = self.conn.execute(
                f"INSERT INTO {child.keys}({names}) VALUES ({', '.join('?' * len(values))})", values
            )
            key = known[values] = cursor.lastrowid
        return key

    def _intern(self, text: str) -> int:
        key = self._strings.get(text)
        if key is None:
            key = self._strings[text] = self.conn.execute("INSERT INTO strings(text) VALUES (?)", (text,)).lastrowid
        return key


def _with_nans(row: dict[str, object], nans: list[str]) -> dict[str, object]:
    if nans:
        row[NAN_COLUMN] = nan_text(nans)
    return row


class RowReader:
    """Reads records back from a run file; name and string tables are cached and refreshed when they grew."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._strings: dict[int, str] = {}
        self._keys: dict[str, dict[int, tuple]] = {child.field: {} for child in schema.CHILDREN}
        self.unpacker = Unpacker(CLASSES, self._string)
        self._frames = KeyframeReader(conn, self.unpacker, {c.rows: c.key_id for c in schema.CHILDREN if c.key_id})

    def record(self, step: int) -> StepRecord | None:
        """The record of `step`, or None when the file has no such step."""
        columns, rows = self.table("SELECT * FROM steps WHERE step = ?", (step,))
        if not rows:
            return None
        nans = nan_set(rows[0][columns.index(NAN_COLUMN)])
        values = schema.STEP.plan(columns).rows(rows, self.unpacker, [nans], [self._frames.coder("steps", None)])[0]
        for child in schema.CHILDREN:
            found = self.table(f"SELECT * FROM {child.rows} WHERE step = ? ORDER BY seq", (step,))
            values[child.field] = self.items(child, *found)
        return build(StepRecord, values)

    def items(
        self, child: schema.ChildTable, columns: tuple[str, ...], rows: list[tuple], only: frozenset[str] | None = None
    ) -> list:
        """Child dataclass instances (LayerStep, ParamStep, ...) from their rows (tuples of `columns`); `only`: read
        just these fields."""
        nan_at = columns.index(NAN_COLUMN)
        nans = [nan_set(row[nan_at]) for row in rows]
        if child.keys is None:
            found = child.shape.plan(columns, only=only).rows(rows, self.unpacker, nans, [PLAIN] * len(rows))
            return [child.shape.cls(**values) for values in found]  # the plan holds constructor fields only
        key_at = columns.index(child.key_id)
        arrays = [self.arrays(child.rows, row[key_at]) for row in rows]
        found = child.shape.plan(columns, only=only).rows(rows, self.unpacker, nans, arrays)
        for values, row in zip(found, rows):
            values.update(zip(child.key_fields, self.key(child, row[key_at])))
        return [child.shape.cls(**values) for values in found]

    def arrays(self, table: str, key: int | None) -> ArrayCoder:
        """How to decode the array blobs of one row of `table` (keyed `key`): differences find their keyframes."""
        return self._frames.coder(table, key)

    def key(self, child: schema.ChildTable, key_id: int) -> tuple:
        """The text fields (a layer's name, type, family) behind a key id."""
        known = self._keys[child.field]
        if key_id not in known:
            names = ", ".join(f'"{k}"' for k in child.key_fields)
            for row in self.conn.execute(f"SELECT {child.key_id}, {names} FROM {child.keys}"):
                known[row[0]] = tuple(row[1:])
        return known[key_id]

    def finding(self, row: dict, step: int | None) -> Finding:
        """A finding from its latest row up to `step` (None: the end), with the last step it held again by then."""
        finding = build(Finding, schema.FINDING.values(row, self.unpacker, nan_set(row[NAN_COLUMN])))
        bound = "" if step is None else "AND at_step <= ?"
        held = self.conn.execute(
            f"SELECT max(at_step) FROM finding_held WHERE finding = ? {bound}",
            (row["id"],) if step is None else (row["id"], step),
        ).fetchone()[0]
        if held is not None:
            finding.last_step = held
        return finding

    def table(self, sql: str, args: tuple) -> tuple[tuple[str, ...], list[tuple]]:
        """The column names and rows of a query, the shape `items` reads."""
        cursor = self.conn.execute(sql, args)
        return tuple(d[0] for d in cursor.description), cursor.fetchall()

    def _string(self, key: int) -> str:
        if key not in self._strings:
            last = max(self._strings, default=0)
            self._strings.update(self.conn.execute("SELECT id, text FROM strings WHERE id > ?", (last,)))
        return self._strings[key]
