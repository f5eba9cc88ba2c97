"""The run file's tables, built from the record dataclasses, and the version that guards them.

One SQLite database per run. `steps` has a row per training step (loss,
wall time, the record's flags), `layer_steps` a row per layer per step
(every LayerStep statistic as a column, histograms and unit arrays as
blobs), `param_steps` a row per parameter per step, `forward_steps` the
mode facts of each forward; `layers` and `params` hold each name once.
`findings` keeps every finding each time it was raised or changed (with the
step it was judged at; `finding_held` the later steps at which it held again
unchanged), `events` validations and interventions, `meta` the
versions, config, layer graph and the writer's status. The README documents
the tables; `PRAGMA user_version` and `meta.format_version` carry
FORMAT_VERSION, and a reader refuses a file from a newer format.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from bpviz.engine.diagnosis.finding import Finding
from bpviz.engine.record.records import StepRecord
from bpviz.engine.runs import branches
from bpviz.engine.runs.shape import CHILD, NAN_COLUMN, TEXT, Shape

FORMAT_VERSION = 3  # 2: branches (bpviz.engine.runs.branches), per-unit arrays as differences from keyframes;
# 3: differences of float32 bits and in byte planes (codec flags 8, 16), which an older reader cannot decode
APPLICATION_ID = 0x62707672  # "bpvr": lets `file` and bpviz tell a run from any other SQLite database
STEP_EXTRAS = (("wall_time", "REAL"), ("step_seconds", "REAL"), ("watch_seconds", "REAL"))
STEP = Shape(StepRecord)
FINDING = Shape(Finding)


@dataclass(frozen=True)
class ChildTable:
    """A list-of-dataclass field of StepRecord stored as rows: `layers` -> `layer_steps` (+ `layers` for names)."""

    field: str
    shape: Shape
    rows: str  # table with one row per item per step
    keys: str | None  # table holding each distinct combination of the item's text fields once
    key_id: str | None
    key_fields: tuple[str, ...]

    def item_columns(self) -> list[tuple[str, str]]:
        return self.shape.columns(skip=self.key_fields)


def _child(field: str, shape: Shape) -> ChildTable:
    singular = field[:-1] if field.endswith("s") else field
    keys = tuple(f.name for f in shape.fields if f.kind == TEXT)
    if not keys:
        return ChildTable(field, shape, f"{singular}_steps", None, None, ())
    return ChildTable(field, shape, f"{singular}_steps", field, f"{singular}_id", keys)


CHILDREN = [_child(f.name, f.inner) for f in STEP.fields if f.kind == CHILD]
# Child tables read one key over many steps (a layer's series, heatmap, histograms) are indexed by (key, step).
# The others are only read a step at a time, and such an index would cost the writer a page per key per step: its
# entries for one step land in as many places as there are keys. Files made before keep theirs.
_READ_BY_KEY = {"layers"}


def create(conn: sqlite3.Connection) -> None:
    """Make the tables of a new run file (inside the caller's transaction)."""
    statements = [
        "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT)",
        "CREATE TABLE strings(id INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE)",
        _table("steps", [("step", "INTEGER PRIMARY KEY")] + _without(STEP.columns(), "step") + list(STEP_EXTRAS)),
        _table(
            "events",
            [
                ("id", "INTEGER PRIMARY KEY"),
                ("step", "INTEGER"),
                ("kind", "TEXT NOT NULL"),
                ("label", "TEXT"),
                ("payload", "BLOB"),
            ],
            nan=False,
        ),
        _table("findings", [("id", "INTEGER PRIMARY KEY"), ("at_step", "INTEGER")] + FINDING.columns()),
        "CREATE INDEX findings_by_step ON findings(at_step)",
        # the loss curve without reading the steps' wide rows (their packed biases)
        "CREATE INDEX steps_loss ON steps(step, loss)",
        # a finding that held again at a step, with nothing else changed: only its last_step moved on
        "CREATE TABLE finding_held(at_step INTEGER NOT NULL, finding INTEGER NOT NULL)",
        "CREATE INDEX finding_held_by_finding ON finding_held(finding, at_step)",
    ]
    for child in CHILDREN:
        columns = [("step", "INTEGER NOT NULL"), ("seq", "INTEGER NOT NULL")]
        if child.keys is not None:
            key_columns = [(name, "TEXT") for name in child.key_fields]
            statements.append(_table(child.keys, [(child.key_id, "INTEGER PRIMARY KEY")] + key_columns, nan=False))
            columns.append((child.key_id, "INTEGER NOT NULL"))
        statements.append(_table(child.rows, columns + child.item_columns(), "PRIMARY KEY(step, seq)"))
        if child.field in _READ_BY_KEY:
            statements.append(f"CREATE INDEX {child.rows}_by_key ON {child.rows}({child.key_id}, step)")
    statements.append(
        "CREATE VIEW layer_stats AS SELECT layer_steps.*, layers.name AS layer, layers.type AS layer_type "
        "FROM layer_steps JOIN layers USING (layer_id)"
    )
    for statement in statements:
        conn.execute(statement)
    branches.create(conn)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {FORMAT_VERSION}")


def is_run(conn: sqlite3.Connection) -> bool:
    """Whether an open database is a bpviz run (by its application id), with the tables `create` makes."""
    return conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID


def _table(name: str, columns: list[tuple[str, str]], constraint: str | None = None, nan: bool = True) -> str:
    parts = [f'"{column}" {sql}' for column, sql in columns] + [f'"{NAN_COLUMN}" TEXT'] * nan
    if constraint:
        parts.append(constraint)
    return f"CREATE TABLE {name}({', '.join(parts)})"


def _without(columns: list[tuple[str, str]], name: str) -> list[tuple[str, str]]:
    return [c for c in columns if c[0] != name]
