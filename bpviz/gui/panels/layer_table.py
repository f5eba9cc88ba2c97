"""The layer table: one row per layer of the latest step, sortable, filterable.

The model keeps its rows and updates them in place (dataChanged) while the
layer set stays the same, so the selection and the scroll position survive
a run; it resets only when the layers themselves change (a new model).

An update of a 300-layer model must fit in one redraw tick, so it compares
each cell's inputs (its column's `changes`) with the previous step's and
signals only the cells that differ, one ranged dataChanged per block of
columns, so the view repaints only those cells; the rows are re-sorted only
when the sorted column changed. Display strings and sort keys are computed
when Qt first asks for them (only the rows on screen are painted) and kept
until the cell changes.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import (
    QAbstractItemModel,
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QBrush, QColor, QIcon

from bpviz.engine.diagnosis.dead_relu import inactive_not_dead
from bpviz.engine.diagnosis.finding import Finding, severity_rank
from bpviz.engine.record.records import LayerStep, StepRecord
from bpviz.gui import theme
from bpviz.gui.format import number, percent
from bpviz.gui.gradient_state import COLOURS, LABELS, MEASURED, NONFINITE, SAMPLED_ZERO, TIPS, ZERO, gradient_state

SORT_ROLE = Qt.ItemDataRole.UserRole
CSV_ROLE = Qt.ItemDataRole.UserRole + 1
NAME_ROLE = Qt.ItemDataRole.UserRole + 2


def _grad(layer: LayerStep) -> str:
    """The gradient norm, or what its absence means: zero, NaN/Inf and "not measured" read differently."""
    state = gradient_state(layer)
    return number(layer.grad_norm, ".2e") if state == MEASURED else LABELS[state]


def _grad_look(layer: LayerStep) -> Any:
    """What the gradient cell's text, colour and tooltip depend on: the norm when measured, else its state."""
    state = gradient_state(layer)
    return layer.grad_norm if state == MEASURED else state


def _same(a: Any, b: Any) -> bool:
    """Whether a cell's inputs are unchanged; a NaN stays the same NaN (it is shown the same)."""
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def _num(value: float | int | None) -> float:
    """A sortable number: missing values sort before every real one."""
    if value is None:
        return -math.inf
    value = float(value)
    return -math.inf if math.isnan(value) else value


@dataclass(frozen=True)
class Column:
    title: str
    tooltip: str
    display: Callable[[LayerStep], str]
    raw: Callable[[LayerStep], Any]
    numeric: bool = True
    looks: Callable[[LayerStep], Any] | None = None  # what text, colour and tooltip depend on, when more than raw

    @property
    def changes(self) -> Callable[[LayerStep], Any]:
        """The cell needs redrawing exactly when this value of its layer changes."""
        return self.looks or self.raw


COLUMNS: list[Column] = [
    Column("", "Worst open finding on this layer", lambda l: "", lambda l: None, numeric=False),
    Column(
        "Layer", "Layer name (module path or functional call site)", lambda l: l.name, lambda l: l.name, numeric=False
    ),
    Column("Type", "Module class or function", lambda l: l.type, lambda l: l.type, numeric=False),
    Column(
        "Dead",
        "Units with no positive output over the recent window",
        lambda l: number(l.dead_units, "d"),
        lambda l: l.dead_units,
        looks=lambda l: (l.dead_units, inactive_not_dead(l)),
    ),
    Column(
        "Units",
        "Units (features or channels) of a ReLU-family layer",
        lambda l: number(l.units, "d"),
        lambda l: l.units,
    ),
    Column(
        "Shape",
        "Shape of the layer's output at the last call",
        lambda l: "×".join(map(str, l.shape)),
        lambda l: "x".join(map(str, l.shape)),
        numeric=False,
    ),
    Column("Zeros", "Share of outputs exactly zero", lambda l: percent(l.zero_fraction), lambda l: l.zero_fraction),
    Column("Mean", "Mean of the outputs", lambda l: number(l.mean, ".3g"), lambda l: l.mean),
    Column("Std", "Standard deviation of the outputs", lambda l: number(l.std, ".3g"), lambda l: l.std),
    Column(
        "Saturation",
        "Share of outputs at the bounds (bounded activations only)",
        lambda l: percent(l.saturated_fraction),
        lambda l: l.saturated_fraction,
    ),
    Column(
        "Grad norm",
        'L2 norm of d(loss)/d(output); "0 (no gradient)": nothing flows back through the layer; '
        '"not measured": no gradient reached its output',
        _grad,
        lambda l: l.grad_norm,
        looks=_grad_look,
    ),
    Column(
        "Update ratio",
        "‖ΔW‖ / ‖W‖ of this step's optimizer update",
        lambda l: number(l.update_ratio, ".1e"),
        lambda l: l.update_ratio,
    ),
]
STATUS, NAME, TYPE, DEAD, UNITS, SHAPE = range(6)  # dead units early: visible in a narrow table
GRAD = next(i for i, c in enumerate(COLUMNS) if c.title == "Grad norm")


_STALE = object()  # a cached sort key that must be computed again
_ROLE = Qt.ItemDataRole
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)


class LayerTableModel(QAbstractTableModel):
    """Rows: the layers of the latest StepRecord, in the order sorted by; status: the worst open finding per layer.

    The model sorts itself (`sort`, which the proxy forwards): a sort proxy compares
    two rows by asking Python for both values, thousands of calls to re-sort 300 rows
    at every step while a changing column is sorted, where one `sorted` over the
    cached keys takes a fraction of a millisecond. The caches are kept per layer,
    in forward order; `_order` maps a row to its layer.
    """

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._layers: list[LayerStep] = []
        self._names: list[str] = []
        self._order: list[int] = []  # row -> layer (index in forward order)
        self._row_of: dict[str, int] = {}
        self._sort_column = -1  # -1: forward order
        self._descending = False
        # Per column, per layer: what the cell was drawn from, its text (None: not formatted yet) and its sort key.
        self._inputs: list[list[Any]] = [[] for _ in COLUMNS]
        self._text: list[list[str | None]] = [[] for _ in COLUMNS]
        self._sort: list[list[Any]] = [[] for _ in COLUMNS]
        self._status: list[str | None] = []
        self._status_tips: list[str] = []
        self._icons: dict[str, QIcon] = {}
        self._brushes: dict[str, QBrush] = {}
        # Qt asks for a dozen roles per painted cell; most are answered by one dict lookup.
        self._roles: dict[int, Callable[[int, int], Any]] = {
            int(_ROLE.DisplayRole): self._display,
            int(SORT_ROLE): self._sort_key,
            int(NAME_ROLE): lambda i, _col: self._names[i],
            int(CSV_ROLE): self._csv,
            int(_ROLE.DecorationRole): self._decoration,
            int(_ROLE.ToolTipRole): self._tooltip,
            int(_ROLE.TextAlignmentRole): lambda _i, col: _RIGHT if COLUMNS[col].numeric else None,
            int(_ROLE.ForegroundRole): self._foreground,
        }
        self.step: int | None = None

    # --- updates ---
    def update(self, record: StepRecord | None, findings: list[Finding]) -> None:
        """Show `record`'s layers with `findings`' marks: in place when the layer names are unchanged."""
        layers = list(record.layers) if record is not None else []
        names = [layer.name for layer in layers]
        self.step = record.step if record is not None else None
        status, tips = _marks(names, findings)
        inputs = [
            list(map(col.changes, layers)) if c != STATUS else list(zip(status, tips)) for c, col in enumerate(COLUMNS)
        ]
        same = names == self._names
        if not same:
            self.beginResetModel()
        changed: list[list[int]] = []  # per column, the layers whose cell changed
        for col, (new, old) in enumerate(zip(inputs, self._inputs)):
            layers_changed = (
                [] if not same or new == old else [i for i, (a, b) in enumerate(zip(new, old)) if not _same(a, b)]
            )
            if not same:
                self._text[col] = [None] * len(layers)
                self._sort[col] = [_STALE] * len(layers)
            for i in layers_changed:
                self._text[col][i] = None
                self._sort[col][i] = _STALE
            changed.append(layers_changed)
        self._inputs = inputs
        self._layers = layers
        self._names = names
        self._status = status
        self._status_tips = tips
        if not same:
            self._order = self._sorted_order()
            self._row_of = {names[i]: row for row, i in enumerate(self._order)}
            self.endResetModel()
            return
        if self._sort_column >= 0 and changed[self._sort_column]:
            self._reorder(self._sorted_order())
        self._signal(changed)

    def _signal(self, changed: list[list[int]]) -> None:
        """One dataChanged per block of adjacent columns whose changed rows span the same range."""
        rank = {i: row for row, i in enumerate(self._order)} if self._sort_column >= 0 else None
        spans = []
        for layers_changed in changed:
            rows = layers_changed if rank is None else [rank[i] for i in layers_changed]
            spans.append((min(rows), max(rows)) if rows else None)
        col = 0
        while col < len(spans):
            span = spans[col]
            last = col
            while last + 1 < len(spans) and spans[last + 1] == span:
                last += 1
            if span is not None:
                self.dataChanged.emit(self.index(span[0], col), self.index(span[1], last))
            col = last + 1

    def clear(self) -> None:
        self.update(None, [])

    # --- sorting ---
    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sort the rows by `column` (-1: forward order), missing values first; they stay sorted as steps arrive."""
        self._sort_column = column
        self._descending = order == Qt.SortOrder.DescendingOrder
        self._reorder(self._sorted_order())

    def _sorted_order(self) -> list[int]:
        """Layers in row order; ties keep forward order, as a stable sort does either way."""
        forward = list(range(len(self._layers)))
        if self._sort_column < 0:
            return forward
        keys = [self._sort_key(i, self._sort_column) for i in forward]
        return sorted(forward, key=keys.__getitem__, reverse=self._descending)

    def _reorder(self, order: list[int]) -> None:
        """Put the rows in `order`, moving persistent indexes (the selection) with their layers."""
        if order == self._order:
            return
        self.layoutAboutToBeChanged.emit()
        rank = {i: row for row, i in enumerate(order)}
        moved = self.persistentIndexList()
        targets = [self.index(rank[self._order[index.row()]], index.column()) for index in moved]
        self._order = order
        self._row_of = {self._names[i]: row for row, i in enumerate(order)}
        self.changePersistentIndexList(moved, targets)
        self.layoutChanged.emit()

    # --- lookups ---
    def names(self) -> list[str]:
        """The layers in forward order, whatever the rows are sorted by."""
        return list(self._names)

    def row_of(self, name: str) -> int | None:
        return self._row_of.get(name)

    def layer(self, row: int) -> LayerStep:
        return self._layers[self._order[row]]

    def status(self, name: str) -> str | None:
        row = self._row_of.get(name)
        return None if row is None else self._status[self._order[row]]

    # --- QAbstractTableModel ---
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._layers)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        answer = self._roles.get(role)
        return None if answer is None else answer(self._order[index.row()], index.column())

    # Each answers for layer i (forward order), column col.
    def _display(self, i: int, col: int) -> str:
        text = self._text[col][i]
        if text is None:
            text = self._text[col][i] = COLUMNS[col].display(self._layers[i])
        return text

    def _sort_key(self, i: int, col: int) -> Any:
        key = self._sort[col][i]
        if key is _STALE:
            if col == STATUS:
                severity = self._status[i]
                key = -1 if severity is None else severity_rank(severity)
            else:
                column = COLUMNS[col]
                key = _num(column.raw(self._layers[i])) if column.numeric else column.raw(self._layers[i])
            self._sort[col][i] = key
        return key

    def _csv(self, i: int, col: int) -> Any:
        if col == STATUS:
            return self._status[i] or "ok"
        value = COLUMNS[col].raw(self._layers[i])
        return "" if value is None else value

    def _decoration(self, i: int, col: int) -> QIcon | None:
        severity = self._status[i] if col == STATUS else None
        return None if severity is None else self._icon(severity)

    def _tooltip(self, i: int, col: int) -> str | None:
        layer = self._layers[i]
        if col == GRAD:
            return TIPS.get(gradient_state(layer))
        if col == DEAD and inactive_not_dead(layer):
            return f"Inactive, not dead: {layer.type} still passes these units a gradient, so they can recover"
        return self._status_tips[i] if col == STATUS else None

    def _foreground(self, i: int, col: int) -> QBrush | None:
        layer = self._layers[i]
        if col == DEAD:
            if not layer.dead_units:
                return None
            return self._brush(theme.MUTED if inactive_not_dead(layer) else theme.DEAD)
        if col == GRAD:
            state = gradient_state(layer)
            return self._brush(COLOURS[state]) if state in (ZERO, SAMPLED_ZERO, NONFINITE) else None
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section].title
        if role == Qt.ItemDataRole.ToolTipRole:
            return COLUMNS[section].tooltip
        return None

    def _icon(self, severity: str) -> QIcon:
        if severity not in self._icons:
            self._icons[severity] = theme.dot_icon(theme.SEVERITY_COLOURS[severity])
        return self._icons[severity]

    def _brush(self, colour: str) -> QBrush:
        if colour not in self._brushes:
            self._brushes[colour] = QBrush(QColor(colour))
        return self._brushes[colour]


def _marks(names: list[str], findings: list[Finding]) -> tuple[list[str | None], list[str]]:
    """Per layer: the severity of its worst open finding (None: none open) and the tooltip listing them all."""
    worst: dict[str, Finding] = {}
    tips: dict[str, list[str]] = {}
    for finding in findings:
        if finding.layer is None or not finding.active:
            continue
        tips.setdefault(finding.layer, []).append(f"{finding.severity}: {finding.message}")
        best = worst.get(finding.layer)
        if best is None or severity_rank(finding.severity) > severity_rank(best.severity):
            worst[finding.layer] = finding
    status = [worst[name].severity if name in worst else None for name in names]
    return status, ["\n".join(tips.get(name, [])) or "No open findings" for name in names]


class LayerSortProxy(QSortFilterProxyModel):
    """Filters by layer name; a sort (a header click) is passed to the LayerTableModel, which sorts itself."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setFilterKeyColumn(NAME)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self.sourceModel().sort(column, order)


def table_csv(model: QAbstractItemModel) -> str:
    """The rows of `model` (a LayerTableModel or a proxy over one), in its current order, as CSV."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    headers = ["status"] + [model.headerData(c, Qt.Orientation.Horizontal) for c in range(1, model.columnCount())]
    writer.writerow([h.lower().replace(" ", "_") for h in headers])
    for row in range(model.rowCount()):
        writer.writerow([model.data(model.index(row, col), CSV_ROLE) for col in range(model.columnCount())])
    return out.getvalue()
