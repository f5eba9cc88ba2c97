"""Branches of a run: a rewind trains on from an earlier step, and the file keeps both lines of steps.

Branch 1 is the run as first trained. A rewind to step k starts branch 2,
whose parent is (branch 1, step k): it shares steps 0..k with branch 1 and
has its own steps from k + 1 on. The `branches` table lists each branch
once with its parent and the last step it shares.

The step tables stay as they are, keyed by step, so plain SQL on branch 1
reads as it always did: a step of branch b is stored under the key
`(b - 1) * STRIDE + step` (STRIDE = 2**32), in every table with a `step` or
`at_step` column (`at_step` where a table has both: see STEP_COLUMNS). A
reader picks a branch by shadowing each of those tables (and the file's own
views over them, such as `layer_stats`) with a TEMP VIEW of the same name
that shows the branch's line of steps with their own step numbers; every query the reader makes then sees one
branch without knowing of branches. Branch 1's view is its key range and
its step column unchanged, so SQLite answers through the tables' indexes as
before; a later branch's steps are shifted by arithmetic, which an index
cannot serve, so a query on such a branch reads that branch's own key range.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

STRIDE = 1 << 32
MAIN = 1
# The column that holds the stored key, in the order looked for: a finding's row has both, and there `at_step` (when
# the row was written) is the key, while `step` is the finding's own first step, a plain step number of its branch.
STEP_COLUMNS = ("at_step", "step")


@dataclass(frozen=True)
class Branch:
    """One line of steps: `parent` and `fork_step` (the last step shared with it) are None for branch 1."""

    id: int
    parent: int | None
    fork_step: int | None
    label: str | None = None

    @property
    def first_step(self) -> int:
        """The first step this branch trained itself."""
        return 0 if self.fork_step is None else self.fork_step + 1


def create(conn: sqlite3.Connection) -> None:
    """The branches table of a new run file, with branch 1 in it (inside the caller's transaction)."""
    conn.execute("CREATE TABLE branches(id INTEGER PRIMARY KEY, parent INTEGER, fork_step INTEGER, label TEXT)")
    conn.execute("INSERT INTO branches(id) VALUES (?)", (MAIN,))


def add(conn: sqlite3.Connection, branch: Branch) -> None:
    conn.execute(
        "INSERT INTO branches(id, parent, fork_step, label) VALUES (?, ?, ?, ?)",
        (branch.id, branch.parent, branch.fork_step, branch.label),
    )


def key(branch: int, step: int | None) -> int | None:
    """Where a branch's step is stored in the step tables (None stays None: before any step)."""
    return None if step is None else (branch - 1) * STRIDE + step


def branches(conn: sqlite3.Connection, schema: str = "main") -> list[Branch]:
    """Every branch of the file in `schema`, oldest first; a file from before branches has branch 1 only."""
    if not _has_table(conn, schema, "branches"):
        return [Branch(MAIN, None, None)]
    rows = conn.execute(f"SELECT id, parent, fork_step, label FROM {schema}.branches ORDER BY id").fetchall()
    return [Branch(*row) for row in rows]


def lineage(known: list[Branch], branch: int) -> list[tuple[int, int, int | None]]:
    """(branch, first step, last step or None) from the run's start to `branch`; KeyError for an unknown branch."""
    by_id = {b.id: b for b in known}
    if branch not in by_id:
        raise KeyError(branch)
    line, current, last = [], by_id[branch], None
    while True:
        line.append((current.id, current.first_step, last))
        if current.parent is None:
            return line[::-1]
        current, last = by_id[current.parent], current.fork_step


def show_branch(conn: sqlite3.Connection, branch: int, schema: str = "main", prefix: str = "") -> None:
    """Create TEMP VIEWs `{prefix}{table}` showing `branch` of the file in `schema`, one per step-keyed table.

    With the default prefix the views shadow the tables themselves for this
    connection's unqualified queries. Rows before any step (a NULL step) are
    shared by every branch.
    """
    line = lineage(branches(conn, schema), branch)
    for table, column, columns in _step_tables(conn, schema):
        others = ", ".join(f'"{c}"' for c in columns if c != column)
        parts = []
        for owner, first, last in line:
            lo, hi = key(owner, first), key(owner, last) if last is not None else owner * STRIDE - 1
            shared = f' OR "{column}" IS NULL' if owner == MAIN else ""
            shown = f'"{column}" - {lo - first}' if lo != first else f'"{column}"'  # plain: the index still serves
            parts.append(
                f'SELECT {shown} AS "{column}", {others} FROM {schema}.{table} '
                f'WHERE ("{column}" BETWEEN {lo} AND {hi}){shared}'
            )
        conn.execute(f"DROP VIEW IF EXISTS temp.{prefix}{table}")
        conn.execute(f"CREATE TEMP VIEW {prefix}{table} AS {' UNION ALL '.join(parts)}")


def _step_tables(conn: sqlite3.Connection, schema: str) -> list[tuple[str, str, list[str]]]:
    """(name, its step column, every column) for each table and view of `schema` keyed by step."""
    sql = f"SELECT name FROM {schema}.sqlite_master WHERE type IN ('table', 'view') ORDER BY name"
    names = conn.execute(sql).fetchall()
    found = []
    for (name,) in names:
        columns = [row[1] for row in conn.execute(f'PRAGMA {schema}.table_info("{name}")')]
        column = next((c for c in STEP_COLUMNS if c in columns), None)
        if column is not None:
            found.append((name, column, columns))
    return found


def _has_table(conn: sqlite3.Connection, schema: str, name: str) -> bool:
    sql = f"SELECT 1 FROM {schema}.sqlite_master WHERE type = 'table' AND name = ?"
    return conn.execute(sql, (name,)).fetchone() is not None
