"""The ranks of a torch.distributed job side by side: which rank's run the window shows, and every rank at once.

A job under torch.distributed records one run file per rank. The window
views one rank's run at a time like any recording (chosen here); beside it
this panel draws the combined view at the step shown: each layer's gradient
norm on every rank as grouped bars (log10, since ranks that drift apart do
so by factors), and the rank-divergence findings the ranks recorded.
It draws what it is given and keeps nothing of the runs.
"""

from __future__ import annotations

import html
import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from bpviz.engine.diagnosis.finding import Finding
from bpviz.gui import theme
from bpviz.gui.plots.decade_axis import DecadeAxis
from bpviz.gui.plots.layer_axis import LayerAxis

GROUP_WIDTH = 0.8  # of one layer's slot, shared by its ranks' bars


class RankPanel(QtWidgets.QWidget):
    """A rank selector over the combined view of one step; `rank_chosen(rank)` when the user picks another."""

    rank_chosen = QtCore.Signal(int)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setStyleSheet(theme.VIEW_STYLE)
        self.selector = QtWidgets.QComboBox()
        self.selector.setToolTip("The rank whose run the window shows")
        self.selector.activated.connect(lambda index: self.rank_chosen.emit(self.selector.itemData(index)))
        self.header = theme.header_label()
        self.axis = LayerAxis()
        self.widget = theme.plot_widget(left="‖∂L/∂out‖", axis_items={"bottom": self.axis, "left": DecadeAxis()})
        self.plot = self.widget.getPlotItem()
        self.plot.showGrid(x=False, y=True, alpha=theme.GRID_ALPHA)
        self.plot.setLogMode(x=False, y=True)  # the axis shows powers of ten; bar coordinates are log10 values
        self.bars: list[pg.BarGraphItem] = []
        self.divergences = QtWidgets.QLabel()
        self.divergences.setWordWrap(True)
        self.divergences.setTextFormat(QtCore.Qt.TextFormat.RichText)
        top = QtWidgets.QHBoxLayout()
        top.addWidget(QtWidgets.QLabel("Rank"))
        top.addWidget(self.selector)
        top.addWidget(self.header, 1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.widget, 1)
        layout.addWidget(self.divergences)
        self.layers: list[str] = []
        self.values = np.zeros((0, 0))
        self._key = ""  # which colour is which rank, after the header's text

    def set_ranks(self, ranks: list[int], shown: int) -> None:
        """The ranks of the set, `shown` selected; one bar colour per rank."""
        self.selector.blockSignals(True)
        self.selector.clear()
        for rank in ranks:
            self.selector.addItem(f"rank {rank}", rank)
        self.selector.setCurrentIndex(ranks.index(shown))
        self.selector.blockSignals(False)
        for bar in self.bars:
            self.plot.removeItem(bar)
        colours = theme.depth_colors(len(ranks))
        width = GROUP_WIDTH / max(1, len(ranks))
        self.bars = []
        for colour in colours:
            bar = pg.BarGraphItem(x=[], height=[], width=width, pen=None, brush=colour)
            self.plot.addItem(bar)
            self.bars.append(bar)
        self._key = "  ".join(
            theme.rich("■", colour.name(), bold=True) + theme.rich(f" rank {rank}", theme.MUTED)
            for rank, colour in zip(ranks, colours)
        )

    def show_step(self, step: int | None, layers: list[str], values: np.ndarray, divergences: list[Finding]) -> None:
        """Draw `values[rank index, layer]` (gradient norms at `step`) and the divergence findings."""
        self.layers, self.values = list(layers), values
        title = f"every rank at step {step}" if step is not None else "every rank"
        self.header.set_parts([theme.rich(title), f"   {self._key}"])
        self.axis.set_names(self.layers)
        width = GROUP_WIDTH / max(1, len(self.bars))
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.where(np.isfinite(values) & (values > 0), np.log10(values), math.nan)
        bottom = math.floor(np.nanmin(logs)) - 0.5 if np.isfinite(logs).any() else 0.0  # one base for every rank
        for index, bar in enumerate(self.bars):
            row = logs[index] if index < len(logs) else np.full(len(layers), math.nan)
            shown = np.isfinite(row)
            x = np.arange(len(layers), dtype=float) - GROUP_WIDTH / 2 + width * (index + 0.5)
            bar.setOpts(x=x[shown], height=row[shown] - bottom, y0=bottom, width=width)
        if len(layers):
            self.plot.setXRange(-0.6, len(layers) - 0.4, padding=0)
        self.divergences.setText(_divergence_text(divergences))


def _divergence_text(findings: list[Finding]) -> str:
    if not findings:
        return theme.rich("No rank diverges from the others.", theme.MUTED)
    rows = [
        theme.rich("● ", theme.SEVERITY_COLOURS.get(f.severity, theme.UNKNOWN_SEVERITY), bold=True)
        + theme.rich(html.escape(f.message, quote=False))
        for f in findings
    ]
    return "<br>".join(rows)
