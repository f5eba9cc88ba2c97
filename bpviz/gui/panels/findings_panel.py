"""The findings list (a problems strip) and the explanation of the selected finding.

Selecting a finding tells the window which layer to select; the explanation
pane says why it matters and what to try. Mode findings (a model left in the
wrong train/eval mode) also feed the banner above the plots.
"""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QItemSelectionModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QAbstractItemView, QLabel, QSplitter, QTableView, QTextBrowser, QVBoxLayout, QWidget

from bpviz.engine.diagnosis.coverage import Check
from bpviz.engine.diagnosis.finding import SEVERITIES, Finding, severity_rank
from bpviz.gui import theme

MODE_KINDS = ("train_mode_in_eval", "eval_mode_in_training")
HEADERS = ("Severity", "Kind", "Layer", "Step", "Message")


def ordered(findings: list[Finding]) -> list[Finding]:
    """Open before resolved, worst first, then oldest first: the order a person should read them in."""
    return sorted(
        findings, key=lambda f: (not f.active, -severity_rank(f.severity), f.step if f.step is not None else -1)
    )


def mode_findings(findings: list[Finding]) -> list[Finding]:
    """The open findings about train/eval mode, which the banner repeats."""
    return [f for f in findings if f.kind in MODE_KINDS and f.active]


def explanation_html(finding: Finding) -> str:
    """The explanation pane's text for one finding."""
    where = f" on <b>{html.escape(finding.layer)}</b>" if finding.layer else ""
    since = "" if finding.step is None else f" since step {finding.step}"
    if finding.last_step is not None and finding.last_step != finding.step:
        since += f" (last seen at step {finding.last_step})"
    state = "" if finding.active else " — no longer holds"
    colour = theme.SEVERITY_COLOURS.get(finding.severity, theme.UNKNOWN_SEVERITY)
    parts = [
        f'<p><span style="color:{colour}; font-weight:bold">{html.escape(finding.severity.upper())}</span> '
        f"<code>{html.escape(finding.kind)}</code>{where}{since}{state}</p>",
        f"<p><b>{html.escape(finding.message)}</b></p>",
    ]
    if finding.explanation:
        parts.append(f"<p>{html.escape(finding.explanation)}</p>")
    if finding.remedies:
        items = "".join(f"<li>{html.escape(r)}</li>" for r in finding.remedies)
        parts.append(f"<p><b>What to try</b></p><ul>{items}</ul>")
    return "".join(parts)


def healthy_html(checks: list[Check], steps: int) -> str:
    """The explanation pane when nothing is wrong: say so plainly, and what was checked, where and when."""
    if not checks:
        return ""
    parts = [
        f'<p><span style="color:{theme.LOSS}; font-weight:bold">No problems found</span> '
        f"in {steps} step{'s' if steps != 1 else ''}.</p><p><b>Checked</b></p><ul>"
    ]
    for check in checks:
        if check.applies:
            shown = ", ".join(check.layers[:SHOWN_LAYERS])
            if len(check.layers) > SHOWN_LAYERS:
                shown += f" and {len(check.layers) - SHOWN_LAYERS} more"
            parts.append(f"<li>{html.escape(check.what)}: {html.escape(shown)}; {html.escape(check.steps)}</li>")
        else:
            why = "no validation ran yet (Validate checks it)" if check.layers else "nothing in this model to check"
            parts.append(f'<li style="color:{theme.MUTED}">{html.escape(check.what)}: {why}</li>')
    parts.append("</ul>")
    return "".join(parts)


def idle_html(text: str) -> str:
    """A muted note in the explanation pane. Not the widget's placeholder text: Qt draws that on one line,
    cut at the pane's width (at 1280x800 it read "Select a finding to see why it")."""
    return f'<p style="color:{theme.MUTED}">{html.escape(text)}</p>'


NOTHING_SELECTED = idle_html("Select a finding to see why it matters and what to try.")
BEFORE_ANY_STEP = idle_html("Findings appear here as the model trains: what is wrong, on which layer, since when.")
FITTED_MAX = 200  # px: a column fitted to its cells grows no wider (a long layer name is elided)
SHOWN_LAYERS = 6  # a check lists at most this many layers by name, then how many more
SORT_ROLE = Qt.ItemDataRole.UserRole


def reading_rank(finding: Finding) -> float:
    """One number for `ordered`'s order, so the sort proxy compares doubles in C++."""
    step = finding.step if finding.step is not None else -1
    return (0.0 if finding.active else 1e12) + (len(SEVERITIES) - severity_rank(finding.severity)) * 1e10 + step


def _shown(finding: Finding) -> tuple:
    """What a row shows: its place in the reading order, its cells' text, whether it still holds."""
    return (
        reading_rank(finding),
        finding.severity,
        finding.kind,
        finding.layer or "(model)",
        "" if finding.step is None else str(finding.step),
        finding.message,
        finding.active,
    )


RANK, ACTIVE = 0, len(HEADERS) + 1  # in a row's shown tuple, around its cells' text
MESSAGE = 1 + HEADERS.index("Message")


class FindingsModel(QAbstractTableModel):
    """Findings in the order they were first raised: rows are only ever appended or updated in place.

    The engine re-sorts its list every step; following that with resets would
    drop the selection and re-measure every row. A sort proxy shows them in
    reading order instead.
    """

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.findings: list[Finding] = []
        # What each row shows, copied: the engine updates its findings in place, so they cannot be compared later.
        self._shown: list[tuple] = []
        self._row_of: dict[tuple[str, str | None], int] = {}
        self._icons = {s: theme.dot_icon(c) for s, c in theme.SEVERITY_COLOURS.items()}
        self._inactive = QBrush(QColor(theme.INACTIVE))

    def set_findings(self, findings: list[Finding]) -> None:
        """Show `findings`: new keys are appended, known ones updated; a vanished key resets the model.

        The engine sends every finding again each step, mostly unchanged: signalling all rows would re-sort them all.
        """
        incoming = {f.key: f for f in findings}
        if any(key not in incoming for key in self._row_of):
            self.beginResetModel()
            self.findings = list(findings)
            self._shown = [_shown(f) for f in self.findings]
            self._row_of = {f.key: row for row, f in enumerate(self.findings)}
            self.endResetModel()
            return
        moved, reworded = [], []  # rows whose place in the order changed; rows whose text alone did
        for key, finding in incoming.items():
            row = self._row_of.get(key)
            if row is None:
                continue
            self.findings[row] = finding
            shown = _shown(finding)
            if shown != self._shown[row]:
                (moved if shown[RANK] != self._shown[row][RANK] else reworded).append(row)
                self._shown[row] = shown
        # The proxy sorts on column 0: a change that leaves it out is repainted without re-sorting every row.
        for rows, first_column in ((moved, 0), (reworded, 1)):
            if rows:
                self.dataChanged.emit(self.index(min(rows), first_column), self.index(max(rows), len(HEADERS) - 1))
        new = [f for f in findings if f.key not in self._row_of]
        if new:
            first = len(self.findings)
            self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
            for finding in new:
                self._row_of[finding.key] = len(self.findings)
                self.findings.append(finding)
                self._shown.append(_shown(finding))
            self.endInsertRows()

    def row_of(self, key: tuple[str, str | None]) -> int | None:
        return self._row_of.get(key)

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.findings)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(HEADERS)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """From the row's shown copy, so the proxy's order always matches what was signalled."""
        shown = self._shown[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return shown[1 + col]
        if role == SORT_ROLE:
            return shown[RANK]
        if role == Qt.ItemDataRole.DecorationRole and col == 0:
            return self._icons.get(shown[1])
        if role == Qt.ItemDataRole.ForegroundRole and not shown[ACTIVE]:
            return self._inactive
        if role == Qt.ItemDataRole.ToolTipRole:
            return shown[MESSAGE] + ("" if shown[ACTIVE] else " (no longer holds)")
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[section]
        return None


class FindingsPanel(QWidget):
    """The list on the left, the selected finding's explanation on the right."""

    finding_selected = Signal(object)  # Finding

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.model = FindingsModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.proxy.setDynamicSortFilter(True)
        self.proxy.sort(0, Qt.SortOrder.AscendingOrder)
        self.view = QTableView()
        self.view.setModel(self.proxy)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.verticalHeader().hide()
        self.view.verticalHeader().setDefaultSectionSize(22)
        self.view.setAlternatingRowColors(True)
        self.view.setShowGrid(False)
        self.view.setWordWrap(False)
        # Each column as wide as its header, widened to its cells as findings arrive (never narrowed, never
        # past FITTED_MAX): the message keeps the rest, at 1280x800 too. ResizeToContents would re-measure
        # every row at every update.
        header = self.view.horizontalHeader()
        header.setStretchLastSection(True)
        for col in range(len(HEADERS) - 1):
            header.resizeSection(col, header.sectionSizeHint(col))
        self.model.rowsInserted.connect(self._fit_columns)
        self.model.modelReset.connect(self._fit_columns)  # a finding gone: the list is set anew
        self.view.selectionModel().selectionChanged.connect(self._on_selection)

        self._restoring = False  # a selection put back after the list was reset: not the user's new choice
        self.title = QLabel("Findings")
        self.title.setStyleSheet("font-weight: bold; padding: 2px 2px;")
        self._shown_html = ""
        self.explanation = QTextBrowser()
        self.explanation.setOpenExternalLinks(True)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setObjectName("findingsSplitter")
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.setSpacing(2)
        top_layout.addWidget(self.title)
        top_layout.addWidget(self.view)
        self.splitter.addWidget(top)
        self.splitter.addWidget(self.explanation)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setSizes([620, 440])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.splitter)
        self._set_html(BEFORE_ANY_STEP)

    def set_findings(self, findings: list[Finding], checks: list[Check] | None = None, steps: int = 0) -> None:
        """Show `findings`; the selection stays on the same finding (the proxy keeps it through re-sorts).

        With no findings after `steps` steps, the explanation says so and lists the `checks` that ran.
        A finding gone (a scrub back before it was raised) resets the list: the one selected, when it is still
        there, stays selected, without being announced again as a new choice.
        """
        kept = self.selected()
        self.model.set_findings(findings)
        if kept is not None and self.selected() is None and self.model.row_of(kept.key) is not None:
            self._restoring = True
            try:
                self.select(kept.key)
            finally:
                self._restoring = False
        open_count = sum(f.active for f in self.model.findings)
        if self.model.findings:
            self.title.setText(f"Findings ({open_count} open)")
        else:
            self.title.setText("Findings (none: no problems found)" if checks else "Findings")
        current = self.selected()
        if current is not None:
            self._explain(current)
        elif self.model.findings:
            self._set_html(NOTHING_SELECTED)
        else:  # the healthy summary only while there is nothing to select
            self._set_html(healthy_html(checks or [], steps) or BEFORE_ANY_STEP)

    def in_view_order(self) -> list[Finding]:
        """The findings as the list shows them (reading order)."""
        return [
            self.model.findings[self.proxy.mapToSource(self.proxy.index(r, 0)).row()]
            for r in range(self.proxy.rowCount())
        ]

    def selected(self) -> Finding | None:
        rows = self.view.selectionModel().selectedRows()
        return self.model.findings[self.proxy.mapToSource(rows[0]).row()] if rows else None

    def select(self, key: tuple[str, str | None]) -> bool:
        """Select the finding with `key` (as a user click would); False when there is none."""
        row = self.model.row_of(key)
        if row is None:
            return False
        self.view.selectionModel().select(
            self.proxy.mapFromSource(self.model.index(row, 0)),
            QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows,
        )
        return True

    def _on_selection(self, *_args) -> None:
        finding = self.selected()
        if finding is None or self._restoring:
            return
        self._explain(finding)
        self.finding_selected.emit(finding)

    def _fit_columns(self, *_args) -> None:
        header = self.view.horizontalHeader()
        for col in range(len(HEADERS) - 1):
            wanted = min(FITTED_MAX, self.view.sizeHintForColumn(col))
            if wanted > header.sectionSize(col):
                header.resizeSection(col, wanted)

    def _explain(self, finding: Finding) -> None:
        self._set_html(explanation_html(finding))

    def _set_html(self, text: str) -> None:
        if text != self._shown_html:  # setHtml relayouts and scrolls to the top: only when something changed
            self._shown_html = text
            self.explanation.setHtml(text)
