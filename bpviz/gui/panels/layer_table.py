"""The layer table: one row per layer of the latest step, sortable, filterable.

The model keeps its rows and updates them in place (dataChanged) while the
layer set stays the same, so the selection and the scroll position survive
a run; it resets only when the layers themselves change (a new model).
Display strings are formatted once per update, not once per paint.
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
from bpviz.gui.gradient_state import COLOURS, LABELS, MEASURED, NONFINITE, TIPS, ZERO, gradient_state

SORT_ROLE = Qt.ItemDataRole.UserRole
CSV_ROLE = Qt.ItemDataRole.UserRole + 1
NAME_ROLE = Qt.ItemDataRole.UserRole + 2


def _grad(layer: LayerStep) -> str:
    """The gradient norm, or what its absence means: zero, NaN/Inf and "not measured" read differently."""
    state = gradient_state(layer)
    return number(layer.grad_norm, ".2e") if state == MEASURED else LABELS[state]


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


class LayerTableModel(QAbstractTableModel):
    """Rows: the layers of the latest StepRecord; status: the worst open finding per layer."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._layers: list[LayerStep] = []
        self._names: list[str] = []
        self._row_of: dict[str, int] = {}
        self._display: list[list[str]] = []
        self._sort: list[list[Any]] = []
        self._status: list[str | None] = []
        self._status_tips: list[str] = []
        self._icons: dict[str, QIcon] = {}
        self.step: int | None = None

    # --- updates ---
    def update(self, record: StepRecord | None, findings: list[Finding]) -> None:
        """Show `record`'s layers with `findings`' marks: in place when the layer names are unchanged."""
        layers = list(record.layers) if record is not None else []
        names = [layer.name for layer in layers]
        self.step = record.step if record is not None else None
        worst: dict[str, Finding] = {}
        tips: dict[str, list[str]] = {}
        for finding in findings:
            if finding.layer is None or not finding.active:
                continue
            tips.setdefault(finding.layer, []).append(f"{finding.severity}: {finding.message}")
            best = worst.get(finding.layer)
            if best is None or severity_rank(finding.severity) > severity_rank(best.severity):
                worst[finding.layer] = finding
        same = names == self._names
        if not same:
            self.beginResetModel()
        self._layers = layers
        self._names = names
        self._row_of = {name: row for row, name in enumerate(names)}
        self._display = [[col.display(layer) for col in COLUMNS] for layer in layers]
        self._sort = [
            [col.raw(layer) if not col.numeric else _num(col.raw(layer)) for col in COLUMNS] for layer in layers
        ]
        self._status = [worst[name].severity if name in worst else None for name in names]
        self._status_tips = ["\n".join(tips.get(name, [])) or "No open findings" for name in names]
        for row, severity in enumerate(self._status):
            self._sort[row][STATUS] = -1 if severity is None else severity_rank(severity)
        if same:
            if layers:
                self.dataChanged.emit(self.index(0, 0), self.index(len(layers) - 1, len(COLUMNS) - 1))
        else:
            self.endResetModel()

    def clear(self) -> None:
        self.update(None, [])

    # --- lookups ---
    def names(self) -> list[str]:
        return list(self._names)

    def row_of(self, name: str) -> int | None:
        return self._row_of.get(name)

    def layer(self, row: int) -> LayerStep:
        return self._layers[row]

    def status(self, name: str) -> str | None:
        row = self._row_of.get(name)
        return None if row is None else self._status[row]

    # --- QAbstractTableModel ---
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._layers)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        row, col = index.row(), index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display[row][col]
        if role == SORT_ROLE:
            return self._sort[row][col]
        if role == NAME_ROLE:
            return self._names[row]
        if role == CSV_ROLE:
            if col == STATUS:
                return self._status[row] or "ok"
            value = COLUMNS[col].raw(self._layers[row])
            return "" if value is None else value
        if role == Qt.ItemDataRole.DecorationRole and col == STATUS:
            severity = self._status[row]
            return None if severity is None else self._icon(severity)
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == GRAD:
                return TIPS.get(gradient_state(self._layers[row]))
            if col == DEAD and inactive_not_dead(self._layers[row]):
                return (
                    f"Inactive, not dead: {self._layers[row].type} still passes these units a gradient, "
                    "so they can recover"
                )
            return self._status_tips[row] if col == STATUS else None
        if role == Qt.ItemDataRole.TextAlignmentRole and COLUMNS[col].numeric:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ForegroundRole and col == DEAD:
            dead = self._layers[row].dead_units
            if not dead:
                return None
            return QBrush(QColor(theme.MUTED)) if inactive_not_dead(self._layers[row]) else QBrush(QColor(theme.DEAD))
        if role == Qt.ItemDataRole.ForegroundRole and col == GRAD:
            state = gradient_state(self._layers[row])
            return QBrush(QColor(COLOURS[state])) if state in (ZERO, NONFINITE) else None
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


class LayerSortProxy(QSortFilterProxyModel):
    """Sorts on raw values (numbers as numbers, missing values first) and filters by layer name."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self.setFilterKeyColumn(NAME)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setDynamicSortFilter(True)


def table_csv(model: QAbstractItemModel) -> str:
    """The rows of `model` (a LayerTableModel or a proxy over one), in its current order, as CSV."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    headers = ["status"] + [model.headerData(c, Qt.Orientation.Horizontal) for c in range(1, model.columnCount())]
    writer.writerow([h.lower().replace(" ", "_") for h in headers])
    for row in range(model.rowCount()):
        writer.writerow([model.data(model.index(row, col), CSV_ROLE) for col in range(model.columnCount())])
    return out.getvalue()
