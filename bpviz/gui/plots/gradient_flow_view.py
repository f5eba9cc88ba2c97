"""How big each layer's gradient is, input to output, now and over time: vanishing and exploding at a glance."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from bpviz.engine.record.history import History
from bpviz.engine.record.records import StepRecord
from bpviz.gui import theme
from bpviz.gui.gradient_state import LABELS, MEASURED, NONFINITE, SAMPLED_ZERO, UNMEASURED, ZERO, gradient_state
from bpviz.gui.plots.base import PlotView, show_empty_frame
from bpviz.gui.plots.decade_axis import DecadeAxis
from bpviz.gui.plots.intervention_marks import InterventionMarks
from bpviz.gui.plots.layer_axis import LayerAxis
from bpviz.gui.plots.reference_curves import ReferenceCurves
from bpviz.gui.plots.traces import LayerTrace, reads

FLOW_MIN_HEIGHT = 190  # px: with the rotated layer names below, room for a labelled decade every 16 px
REFERENCE_LAYERS = 12  # faint curves over time: at most this many layers, spread evenly in depth


@reads("grad_norm", "grad_nonfinite")
def _grad_norm(layer) -> float | None:
    if layer.grad_norm is None:
        return None
    return float("nan") if layer.grad_nonfinite else float(layer.grad_norm)


def flow_at(record: StepRecord) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(names in forward order, finite positive norms (NaN elsewhere), each layer's `gradient_state`)."""
    layers = sorted(record.layers, key=lambda layer: layer.order)
    names = [layer.name for layer in layers]
    states = np.array([gradient_state(layer) for layer in layers], dtype=object)
    norms = np.array(
        [layer.grad_norm if state == MEASURED else np.nan for layer, state in zip(layers, states)], dtype=np.float64
    )
    return names, norms, states


def legend_html() -> str:
    """What each mark of the bar chart means: a zero gradient, NaN/Inf and "not measured" never look alike."""
    marks = [
        ("▮", theme.GRADIENT, "norm"),
        ("■", theme.ZERO_GRADIENT, LABELS[ZERO]),
        ("▮", theme.BAD, LABELS[NONFINITE]),
        ("×", theme.MUTED, LABELS[UNMEASURED]),
    ]
    return "   ".join(
        theme.rich(symbol, colour, bold=True) + theme.rich(f" {text}", theme.MUTED) for symbol, colour, text in marks
    )


class GradientFlowView(PlotView):
    """Per-layer gradient norms ‖∂loss/∂output‖ at the latest step (bars, log y) and over time (curves, log y)."""

    layer_clicked = QtCore.Signal(str)  # a bar was clicked: the shell may select that layer

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setStyleSheet(theme.VIEW_STYLE)
        self.header = theme.header_label()

        self.axis = LayerAxis()
        self.flow_widget = theme.plot_widget(left="‖∂L/∂out‖", axis_items={"bottom": self.axis, "left": DecadeAxis()})
        self.flow = self.flow_widget.getPlotItem()
        self.flow_widget.setMinimumHeight(FLOW_MIN_HEIGHT)
        self.flow.setLogMode(x=False, y=True)  # the axis shows powers of ten; bar coordinates are log10 values
        self.flow.getViewBox().setMouseEnabled(x=True, y=False)
        self.selection_band = pg.BarGraphItem(
            x=[], height=[], width=1.0, pen=None, brush=theme.brush(theme.HIGHLIGHT, 0.16)
        )
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.72, pen=None, brush=theme.brush(theme.GRADIENT))
        self.nonfinite_bars = pg.BarGraphItem(x=[], height=[], width=0.72, pen=None, brush=theme.brush(theme.BAD, 0.85))
        self.missing = pg.ScatterPlotItem(symbol="x", size=8, pen=theme.pen(theme.MUTED, 1.5), brush=None)
        self.zero_marks = pg.ScatterPlotItem(symbol="s", size=9, pen=None, brush=theme.brush(theme.ZERO_GRADIENT))
        for item in (self.selection_band, self.bars, self.nonfinite_bars, self.missing, self.zero_marks):
            self.flow.addItem(item)
        self.flow_widget.scene().sigMouseClicked.connect(self._on_click)

        # untitled: a title row would take the height the curves need in a small window; the tooltip explains them
        self.time_widget = theme.plot_widget(left="‖∂L/∂out‖", bottom="step", axis_items={"left": DecadeAxis()})
        self.time_widget.setToolTip(
            "Gradient norm over time: the selected layer in white, the others coloured by depth "
            "(dark = near the input, bright = near the output)"
        )
        self.time = self.time_widget.getPlotItem()
        self.time.setLogMode(x=False, y=True)
        self.time.setClipToView(True)
        self.time.setDownsampling(auto=True, mode="peak")
        self.references = ReferenceCurves(self.time, _grad_norm, REFERENCE_LAYERS, alpha=0.55)
        self.selected_curve = self.time.plot(pen=theme.pen(theme.SELECTED, 2.2))
        self.selected_curve.setZValue(10)
        self.marks = InterventionMarks(self.time)

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        self.legend = theme.header_label()
        self.legend.setText(legend_html())
        layout.addWidget(self.header)
        layout.addWidget(self.legend)
        layout.addWidget(self.flow_widget, 3)
        layout.addWidget(self.time_widget, 2)

        self._drawn: tuple[StepRecord | None, str | None] = (None, None)
        self._names: list[str] = []
        self._ranges: tuple | None = None
        self._norms = np.empty(0)
        self._states = np.empty(0, dtype=object)
        self._selected_trace: LayerTrace | None = None
        self._set_header(None)

    # --- PlotView -------------------------------------------------------------------------------------

    def _layer_changed(self, name: str | None) -> None:
        """Highlight `name` in the bars and draw its curve over time in front of the others."""
        self._selected_trace = None if name is None else LayerTrace(name, _grad_norm)

    def refresh(self, history: History) -> None:
        """Redraw from `history`, reading only records newer than the last drawn."""
        self._history = history
        latest = history.latest
        if (latest, self._selected) != self._drawn:
            self._draw_flow(latest)
            self._drawn = (latest, self._selected)
        self._draw_over_time(history)

    def export_targets(self) -> dict[str, QtWidgets.QWidget]:
        """The two plots, for PNG/SVG export."""
        return {"gradient flow": self.flow_widget, "gradient norms over time": self.time_widget}

    # --- drawing --------------------------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        """The layers along the x axis, input to output (bar i is names[i])."""
        return self._names

    def plotted_norms(self) -> tuple[np.ndarray, np.ndarray]:
        """(layer index, gradient norm) of the bars on screen: finite, positive norms only."""
        opts = self.bars.opts
        x = np.asarray(opts.get("x") if opts.get("x") is not None else [], dtype=np.float64)
        if len(x) == 0:
            return x, np.empty(0)
        return x, 10.0 ** (np.asarray(opts["y0"]) + np.asarray(opts["height"]))

    def _draw_flow(self, record: StepRecord | None) -> None:
        names, norms, states = flow_at(record) if record is not None else ([], np.empty(0), np.empty(0, dtype=object))
        nonfinite, missing = states == NONFINITE, states == UNMEASURED
        zero = (states == ZERO) | (states == SAMPLED_ZERO)  # at the floor both; the header tells them apart
        self._names, self._norms, self._states = names, norms, states
        self.axis.set_names(names)
        x = np.arange(len(names), dtype=np.float64)
        finite = ~np.isnan(norms)
        logs = np.log10(norms[finite])
        floor = math.floor(logs.min()) - 1 if len(logs) else -8.0
        ceil = math.ceil(logs.max()) + 0.3 if len(logs) else 1.0
        self.bars.setOpts(x=x[finite], y0=np.full(finite.sum(), floor), height=logs - floor)
        self.nonfinite_bars.setOpts(
            x=x[nonfinite], y0=np.full(nonfinite.sum(), floor), height=np.full(nonfinite.sum(), ceil - floor)
        )
        self.missing.setData(x=x[missing], y=np.full(missing.sum(), floor + 0.15))
        self.zero_marks.setData(x=x[zero], y=np.full(zero.sum(), floor + 0.15))  # at the floor: below every norm
        index = names.index(self._selected) if self._selected in names else -1
        if index >= 0:
            self.selection_band.setOpts(x=[float(index)], y0=[floor], height=[ceil - floor])
        else:
            self.selection_band.setOpts(x=[], y0=[], height=[])
        ranges = ((-0.6, len(names) - 0.4), (floor, ceil))
        if names and ranges != self._ranges:  # a range change re-lays out both axes: only when it moved
            self._ranges = ranges
            self.flow.setRange(xRange=ranges[0], yRange=ranges[1], padding=0)
        elif not names and self._ranges is not None:  # a new model or a reset: not the old model's scale
            self._ranges = None
            show_empty_frame(self.flow, self.time)
        self._set_header(record)

    def _draw_over_time(self, history: History) -> None:
        self.marks.update(history)
        self.references.set_layers(self._names)
        self.references.update(history)
        trace = self._selected_trace
        if trace is None:
            self.selected_curve.setData([], [])
        elif trace.update(history):
            self.selected_curve.setData(trace.steps, trace.values, connect="finite")

    def _set_header(self, record: StepRecord | None) -> None:
        if record is None:
            self.header.setText(theme.rich("gradient flow: no steps yet", theme.MUTED))
            return
        # the bars read input ▸ output along the axis: the title says no more, so the numbers after it fit
        parts = [theme.rich("gradient norm per layer", theme.FOREGROUND, bold=True)]
        parts.append(theme.rich(f"   step {record.step}", theme.MUTED))
        counts = {state: int((self._states == state).sum()) for state in (NONFINITE, ZERO, SAMPLED_ZERO, UNMEASURED)}
        if counts[NONFINITE]:  # the warnings first: a narrow header leaves out its last parts
            parts.insert(0, theme.badge(f"{counts[NONFINITE]} NaN/Inf"))
        if counts[ZERO]:
            parts.append(theme.rich(f"   ·   {counts[ZERO]} with no gradient", theme.ZERO_GRADIENT, bold=True))
        if counts[SAMPLED_ZERO]:
            parts.append(theme.rich(f"   ·   {counts[SAMPLED_ZERO]} ≈0 in their sample", theme.ZERO_GRADIENT))
        if self._selected in self._names:
            index = self._names.index(self._selected)
            state = self._states[index]
            shown = f"{self._norms[index]:.3g}" if state == MEASURED else LABELS[state]
            parts.append(
                theme.rich(f"   ·   {self._selected} ", theme.MUTED) + theme.rich(shown, theme.SELECTED, bold=True)
            )
        finite = self._norms[~np.isnan(self._norms)]
        if len(finite) >= 2:
            parts.append(theme.rich(f"   ·   spread {finite.max() / finite.min():.2g}×", theme.MUTED))
        self.header.set_parts(parts)

    def _on_click(self, event) -> None:
        if event.button() != QtCore.Qt.MouseButton.LeftButton or not self._names:
            return
        point = self.flow.getViewBox().mapSceneToView(event.scenePos())
        index = int(round(point.x()))
        if 0 <= index < len(self._names) and self.flow.getViewBox().sceneBoundingRect().contains(event.scenePos()):
            self.layer_clicked.emit(self._names[index])
