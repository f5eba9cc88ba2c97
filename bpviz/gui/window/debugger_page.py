"""The debugger page: layer table (left), plots (right), findings and their explanation under the plots.

It arranges widgets and routes selection between them; it knows nothing of
threads or files. The window's redraw clock feeds it a run's state through
`begin_cycle` and draws the parts it names; its plots are registered in the
window's PlotRegistry, which draws them.
"""

from __future__ import annotations

import time
from collections import deque

from PySide6.QtCore import QItemSelectionModel, QModelIndex, Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QLineEdit,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from bpviz.engine.config import Config
from bpviz.engine.diagnosis.coverage import checks_run
from bpviz.engine.diagnosis.finding import Finding, severity_rank
from bpviz.engine.record.history import History
from bpviz.gui import theme
from bpviz.gui.panels.findings_panel import FindingsPanel, mode_findings
from bpviz.gui.panels.layer_table import NAME, NAME_ROLE, LayerSortProxy, LayerTableModel
from bpviz.gui.plots.base import PlotRegistry
from bpviz.gui.plots.dead_units_view import DeadUnitsView
from bpviz.gui.plots.gradient_flow_view import GradientFlowView
from bpviz.gui.plots.histogram_view import HistogramView
from bpviz.gui.plots.loss_view import LossView

PAGE_PARTS = ("table", "findings")  # the parts of a redraw the page draws itself, before its plots
TABLE_WIDTH = 380  # enough for a layer's name, type, shape, units and dead units


def worst_layer(findings: list[Finding]) -> str | None:
    """The layer of the worst open finding (the earliest among equals), or None when no finding names a layer."""
    candidates = [f for f in findings if f.layer and f.active] or [f for f in findings if f.layer]
    if not candidates:
        return None
    best = max(candidates, key=lambda f: (severity_rank(f.severity), -(f.step if f.step is not None else 0)))
    return best.layer


class DebuggerPage(QWidget):
    """Everything shown once a model is loaded."""

    layer_selected = Signal(object)  # str | None

    def __init__(self, plots: PlotRegistry, parent=None) -> None:
        super().__init__(parent)
        self.plots = plots
        self.history: History | None = None
        self.findings: list[Finding] = []
        self.config = Config()  # the thresholds the engine judges with (the window runs with the defaults)
        self._wanted_layer: str | None = None
        # The layer the plots follow: the table's selection, kept while a filter hides its row (Qt drops a hidden
        # row's selection; the plots going blank and the filter's clearing losing the layer would both mislead).
        self._layer: str | None = None

        # --- layer table ---
        self.table_model = LayerTableModel(self)
        self.proxy = LayerSortProxy(self)
        self.proxy.setSourceModel(self.table_model)
        self.table = QTableView()
        self.table.setObjectName("layerTable")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # forward order until the user sorts
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.horizontalHeader().setHighlightSections(False)
        self.table.horizontalHeader().setResizeContentsPrecision(40)  # fit columns to 40 rows, not to all 300
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.table.selectionModel().selectionChanged.connect(self._on_table_selection)
        self.table_model.modelReset.connect(self._fit_columns)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter layers by name…")
        self.filter.setClearButtonEnabled(True)
        self.filter.setToolTip("Show the layers whose name contains this text  (Escape: back to the table)")
        self.filter.textChanged.connect(self._on_filter)
        # Escape hands the keys back (to the table it filters): while the filter has them, the arrow keys
        # and ',' '.' are text, and the timeline's shortcuts do nothing
        leave = QShortcut(QKeySequence(Qt.Key.Key_Escape), self.filter, context=Qt.ShortcutContext.WidgetShortcut)
        leave.activated.connect(self.table.setFocus)
        self.table_title = QLabel("Layers")
        self.table_title.setStyleSheet("font-weight: bold; padding: 2px 2px;")
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.setSpacing(3)
        left_layout.addWidget(self.table_title)
        left_layout.addWidget(self.filter)
        left_layout.addWidget(self.table)

        # --- plots ---
        self.histogram_view = HistogramView()
        self.dead_units_view = DeadUnitsView()
        self.gradient_flow_view = GradientFlowView()
        self.loss_view = LossView()
        self.views = {
            "activations": self.histogram_view,
            "dead_units": self.dead_units_view,
            "gradient_flow": self.gradient_flow_view,
            "loss": self.loss_view,
        }
        for name, view in self.views.items():
            plots.add(name, view)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.histogram_view, "Activations && gradients")
        self.tabs.addTab(self.dead_units_view, "Dead units")
        self.side_splitter = QSplitter(Qt.Orientation.Vertical)
        self.side_splitter.setObjectName("sideViewsSplitter")
        self.side_splitter.addWidget(self.gradient_flow_view)
        self.side_splitter.addWidget(self.loss_view)
        self.side_splitter.setStretchFactor(0, 3)
        self.side_splitter.setStretchFactor(1, 2)
        self.views_splitter = QSplitter(Qt.Orientation.Horizontal)
        self.views_splitter.setObjectName("viewsSplitter")
        self.views_splitter.addWidget(self.tabs)
        self.views_splitter.addWidget(self.side_splitter)
        self.views_splitter.setSizes([560, 520])
        self.banner = QLabel()
        self.banner.setObjectName("modeBanner")
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet(theme.WARNING_BANNER_STYLE)
        self.banner.hide()
        views = QWidget()
        views_layout = QVBoxLayout(views)
        views_layout.setContentsMargins(0, 0, 0, 0)
        views_layout.setSpacing(3)
        views_layout.addWidget(self.banner)
        views_layout.addWidget(self.views_splitter, 1)

        # --- findings (a problems strip under the plots) ---
        self.findings_panel = FindingsPanel()
        self.findings_panel.finding_selected.connect(self._on_finding_selected)

        self.right_splitter = QSplitter(Qt.Orientation.Vertical)
        self.right_splitter.setObjectName("rightSplitter")
        self.right_splitter.addWidget(views)
        self.right_splitter.addWidget(self.findings_panel)
        self.right_splitter.setStretchFactor(0, 3)
        self.right_splitter.setStretchFactor(1, 1)
        self.right_splitter.setSizes([620, 220])
        self.main_splitter = QSplitter(Qt.Orientation.Horizontal)
        self.main_splitter.setObjectName("mainSplitter")
        self.main_splitter.addWidget(left)
        self.main_splitter.addWidget(self.right_splitter)
        # The table keeps its width when the window or the docks beside it change; the plots take the rest.
        self.main_splitter.setStretchFactor(0, 0)
        self.main_splitter.setStretchFactor(1, 1)
        self.main_splitter.setSizes([TABLE_WIDTH, 1060])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.addWidget(self.main_splitter)
        # Seconds the page's own parts' latest redraws took (the plots' are in the registry), for the benchmark.
        self.part_seconds: dict[str, deque[float]] = {part: deque(maxlen=10_000) for part in PAGE_PARTS}

    def splitters(self) -> list[QSplitter]:
        """The splitters whose positions the window remembers."""
        return [
            self.main_splitter,
            self.right_splitter,
            self.views_splitter,
            self.side_splitter,
            self.findings_panel.splitter,
        ]

    # --- data ---
    def clear(self) -> None:
        """Forget everything shown (a new model or a reset): every plot, hidden ones too, shows "no steps yet" at once.

        Waiting for the first step would leave the previous model's data under the new file's name.
        """
        self.history = None
        self.findings = []
        self._wanted_layer = None
        self._layer = None
        self.table_model.clear()
        self.table_title.setText("Layers")
        self.findings_panel.set_findings([])
        self.banner.hide()
        empty = History(1)
        for key, view in self.views.items():
            view.set_layer(None)
            self.plots.refresh(key, empty)  # guarded: one broken plot must not stop the others from clearing

    def begin_cycle(self, history: History, findings: list[Finding]) -> list[str]:
        """Take new data in; return the parts to draw (the table, the findings, then each visible plot), one per
        event-loop turn.

        Qt paints a window's dirty widgets in one pass, so refreshing every plot in one
        go makes one long pause; drawing one part per timer tick keeps each pause short.
        """
        self.history = history
        self.findings = findings
        return [*PAGE_PARTS] + [key for key, view in self.views.items() if view.isVisible()]

    def draw_part(self, part: str) -> None:
        """Draw one part named by `begin_cycle`."""
        if part in PAGE_PARTS:
            started = time.perf_counter()
            if part == "table":
                self._draw_table()
            else:
                self._draw_findings()
            self.part_seconds[part].append(time.perf_counter() - started)
        elif part in self.views and self.history is not None:
            self.plots.refresh(part, self.history)

    def _draw_table(self) -> None:
        findings = self.findings
        self.table_model.update(self.history.latest if self.history is not None else None, findings)
        self._set_title()
        if self._wanted_layer is not None and self.table_model.row_of(self._wanted_layer) is not None:
            self.select_layer(self._wanted_layer)
        elif self._layer is None or self.table_model.row_of(self._layer) is None:
            if self.table_model.rowCount():
                self.select_layer(worst_layer(findings) or self.table_model.names()[0])
        else:
            self._show_selection()  # new layer names reset the table, and with it the row's highlight

    def _draw_findings(self) -> None:
        """The findings list and the banner: a part of its own, so no tick draws both it and a 300-row table."""
        history = self.history
        findings = self.findings
        checks = checks_run(history, self.config) if history is not None and not findings else None
        span = history.span() if history is not None else None
        self.findings_panel.set_findings(findings, checks, span[1] if span is not None else 0)
        self._update_banner(findings)

    def refresh_views(self) -> None:
        """Redraw the plots a person can see; the registry draws the hidden ones when they are shown."""
        self.plots.mark_stale(self.views)
        if self.history is None:
            return
        for key, view in self.views.items():
            if view.isVisible():
                self.plots.refresh(key, self.history)

    def _update_banner(self, findings: list[Finding]) -> None:
        """Mode findings invalidate what the plots show; so does a statistic bpviz failed to take."""
        lines = [f.message for f in mode_findings(findings)]
        latest = self.history.latest if self.history is not None else None
        if latest is not None and latest.unmeasured:
            shown = "; ".join(latest.unmeasured[:3]) + ("; …" if len(latest.unmeasured) > 3 else "")
            lines.append(f"bpviz could not measure everything (training is unaffected): {shown}")
        if lines:
            self.banner.setText("⚠  " + "   ".join(lines))
        self.banner.setVisible(bool(lines))

    # --- selection ---
    def selected_layer(self) -> str | None:
        """The layer the plots follow (see `_layer`)."""
        return self._layer

    def _table_selection(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        return self.proxy.data(rows[0], NAME_ROLE) if rows else None

    def _proxy_index(self, name: str) -> QModelIndex | None:
        """Where `name` is in the table as shown; None when it is not a layer, invalid while a filter hides it."""
        row = self.table_model.row_of(name)
        return None if row is None else self.proxy.mapFromSource(self.table_model.index(row, NAME))

    def select_layer(self, name: str | None) -> bool:
        """Select `name` in the table (clearing a filter that hides it); the plots follow."""
        if name is None:
            return False
        index = self._proxy_index(name)
        if index is None:
            self._wanted_layer = name  # not drawn yet (records arrive faster than redraws): select it once it is
            return False
        self._wanted_layer = None
        if not index.isValid():
            self.filter.clear()
            index = self._proxy_index(name)
        self._highlight(index)
        return True

    def _highlight(self, index: QModelIndex) -> None:
        self.table.selectionModel().select(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        )
        self.table.scrollTo(index)

    def _show_selection(self) -> None:
        """Highlight the followed layer's row again where it is shown and not highlighted."""
        index = self._proxy_index(self._layer) if self._layer is not None else None
        if index is not None and index.isValid() and self._table_selection() != self._layer:
            self._highlight(index)

    def _on_filter(self, text: str) -> None:
        self.proxy.setFilterFixedString(text)
        self._set_title()
        self._show_selection()  # the filter cleared or widened: the followed layer's row is back

    def _set_title(self) -> None:
        total = self.table_model.rowCount()
        shown = self.proxy.rowCount()
        self.table_title.setText(f"Layers ({shown} of {total})" if shown != total else f"Layers ({total})")

    def select_worst(self) -> str | None:
        """Select the worst finding (and so its layer): what a screenshot or a first look should show."""
        name = worst_layer(self.findings)
        ranked = sorted(
            (f for f in self.findings if f.layer == name), key=lambda f: (not f.active, -severity_rank(f.severity))
        )
        if ranked:
            self.findings_panel.select(ranked[0].key)
        self.select_layer(name)
        return name

    def _on_table_selection(self, *_args) -> None:
        name = self._table_selection()
        if name is None and self._layer is not None:
            row = self.table_model.row_of(self._layer)
            # asked of the filter, not of the proxy's rows: Qt drops the selection before it removes the row
            if row is not None and not self.proxy.filterAcceptsRow(row, QModelIndex()):
                return  # the filter hid its row: the plots stay on it, and clearing the filter highlights it again
        self._layer = name
        for view in self.views.values():
            view.set_layer(name)
        self.refresh_views()
        self.layer_selected.emit(name)

    def _on_finding_selected(self, finding: Finding) -> None:
        if finding.layer:
            self.select_layer(finding.layer)

    def _fit_columns(self) -> None:
        self.table.resizeColumnsToContents()
        header = self.table.horizontalHeader()
        header.resizeSection(NAME, min(max(header.sectionSize(NAME), 90), 240))
