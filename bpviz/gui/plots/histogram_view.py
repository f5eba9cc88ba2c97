"""The selected layer's value distribution: its histogram now, and activation/gradient histograms over time."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from bpviz.engine.record.history import History
from bpviz.engine.record.records import Histogram, LayerStep
from bpviz.gui import theme
from bpviz.gui.plots.intervention_marks import InterventionMarks
from bpviz.gui.plots.traces import LayerTrace, find_layer


def _log_counts(hist: Histogram | None) -> np.ndarray | None:
    # heatmaps show log(1 + count): a few outliers stay visible next to a crowded bin
    return None if hist is None else np.log1p(hist.counts)


class HistogramHeatmap:
    """One histogram-over-time heatmap: a rolling ImageItem (x = step, y = value, colour = log(1 + count))."""

    def __init__(self, widget: pg.PlotWidget, colormap: str, grad: bool) -> None:
        self.widget = widget
        self.plot = widget.getPlotItem()
        self.image = pg.ImageItem(axisOrder="col-major")  # image[step, bin]: x = step, y = bin
        self.image.setColorMap(theme.colormap(colormap))
        self.plot.addItem(self.image)
        self.empty = pg.TextItem("", color=theme.MUTED, anchor=(0.5, 0.5))
        self.plot.addItem(self.empty)
        self.marks = InterventionMarks(self.plot)
        self._grad = grad
        self._level_max = 1.0
        self.trace: LayerTrace | None = None
        self.bounds: tuple[float, float] = (0.0, 1.0)
        self._show_empty("")  # a plain 0..1 frame until there is data: an empty image's range reads ±1e-149

    def select(self, name: str | None) -> None:
        """Follow layer `name` (None: nothing)."""
        attr = "grad_histogram" if self._grad else "histogram"
        self.trace = None if name is None else LayerTrace(name, lambda layer: _log_counts(getattr(layer, attr)))
        self._level_max = 1.0

    def update(self, history: History, layer: LayerStep | None) -> bool:
        """Append new columns; True when the image changed."""
        hist = None if layer is None else (layer.grad_histogram if self._grad else layer.histogram)
        if hist is not None:
            self.bounds = (hist.lo, hist.hi)
        if self.trace is None or not self.trace.update(history):
            if self.trace is None:
                self._show_empty("select a layer")
            return False
        values, steps = self.trace.values, self.trace.steps
        if len(steps) == 0:
            self.image.clear()
            self._show_empty("no gradient histograms yet" if self._grad else "no histograms for this layer")
            return True
        self.empty.setText("")
        self._level_max = max(self._level_max, float(values.max()))  # levels only grow: colours stay comparable
        self.image.setImage(values, autoLevels=False, levels=(0.0, self._level_max))
        lo, hi = self.bounds
        x0, x1 = steps[0] - 0.5, steps[-1] + 0.5
        self.image.setRect(QtCore.QRectF(x0, lo, x1 - x0, hi - lo))
        # explicit ranges: the two heatmaps share x, and an auto range would follow the empty one
        self.plot.setRange(xRange=(x0, x1), yRange=(lo, hi), padding=0)
        return True

    def _show_empty(self, text: str) -> None:
        self.image.clear()
        self.empty.setText(text)
        self.plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
        self.empty.setPos(0.5, 0.5)


class HistogramView(QtWidgets.QWidget):
    """Current activation histogram (the previous step faint behind it) and histogram-over-time heatmaps."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setStyleSheet(theme.VIEW_STYLE)
        self.header = theme.header_label()
        self.header.setTextFormat(QtCore.Qt.TextFormat.RichText)

        self.histogram_widget = theme.plot_widget(left="count", bottom="activation value", grid=False)
        self.histogram_plot = self.histogram_widget.getPlotItem()
        self.previous_curve = self.histogram_plot.plot(
            stepMode="center", pen=theme.pen(theme.MUTED, 1.2), fillLevel=0, brush=theme.brush(theme.MUTED, 0.18))
        self.current_curve = self.histogram_plot.plot(
            stepMode="center", pen=theme.pen(theme.ACTIVATION, 1.6), fillLevel=0,
            brush=theme.brush(theme.ACTIVATION, 0.35))

        self.activation_map = HistogramHeatmap(
            theme.plot_widget(title="activations over time", left="value", bottom="step", grid=False),
            theme.ACTIVATION_COLORMAP, grad=False)
        self.gradient_map = HistogramHeatmap(
            theme.plot_widget(title="gradients over time", left="log₁₀|∂L/∂out|", bottom="step", grid=False),
            theme.GRADIENT_COLORMAP, grad=True)

        maps = QtWidgets.QHBoxLayout()
        maps.setSpacing(2)
        maps.addWidget(self.activation_map.widget)
        maps.addWidget(self.gradient_map.widget)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.header)
        layout.addWidget(self.histogram_widget, 1)
        layout.addLayout(maps, 1)

        self._history: History | None = None
        self._selected: str | None = None
        self._hint = -1
        self._drawn_latest = None
        self._set_header(None, None)

    # --- the interface every view shares -------------------------------------------------------------

    def set_layer(self, name: str | None) -> None:
        """Show layer `name` (None: nothing)."""
        if name == self._selected:
            return
        self._selected = name
        self._hint = -1
        self._drawn_latest = None
        self.activation_map.select(name)
        self.gradient_map.select(name)
        self.current_curve.setData([], [])
        self.previous_curve.setData([], [])
        if self._history is not None:
            self.refresh(self._history)
        else:
            self._set_header(None, None)

    def refresh(self, history: History) -> None:
        """Redraw from `history`, reading only records newer than the last drawn."""
        self._history = history
        for heatmap in (self.activation_map, self.gradient_map):
            heatmap.marks.update(history)  # remedies land between steps, before any new record
        latest = history.latest
        if latest is self._drawn_latest:
            return
        self._drawn_latest = latest
        layer = None
        if latest is not None and self._selected is not None:
            layer = find_layer(latest, self._selected, self._hint)
            self._hint = -1 if layer is None else layer.order
        self.activation_map.update(history, layer)
        self.gradient_map.update(history, layer)
        self._draw_current(layer)
        self._set_header(latest, layer)

    def export_targets(self) -> dict[str, QtWidgets.QWidget]:
        """The histogram and the two heatmaps, for PNG/SVG export."""
        return {
            "histogram": self.histogram_widget,
            "activation histograms over time": self.activation_map.widget,
            "gradient histograms over time": self.gradient_map.widget,
        }

    # --- drawing --------------------------------------------------------------------------------------

    def _draw_current(self, layer: LayerStep | None) -> None:
        trace = self.activation_map.trace
        if trace is None or len(trace) == 0 or layer is None or layer.histogram is None:
            self.current_curve.setData([], [])
            self.previous_curve.setData([], [])
            return
        edges = layer.histogram.edges
        self.current_curve.setData(edges, layer.histogram.counts)
        rows = trace.values
        if len(rows) >= 2 and rows.shape[1] == len(layer.histogram.counts):
            self.previous_curve.setData(edges, np.expm1(rows[-2]))
        else:
            self.previous_curve.setData([], [])

    def _set_header(self, latest, layer: LayerStep | None) -> None:
        if self._selected is None:
            self.header.setText(theme.rich("histograms: select a layer", theme.MUTED))
            return
        text = theme.badge("NaN/Inf in output") if layer is not None and layer.nonfinite else ""
        text += theme.rich(self._selected, theme.SELECTED, bold=True)
        if layer is None:
            suffix = "   no steps yet" if latest is None else f"   not seen at step {latest.step}"
            self.header.setText(text + theme.rich(suffix, theme.MUTED))
            return
        kind = layer.type if not layer.family or layer.family == layer.type.lower() else f"{layer.type}, {layer.family}"
        text += theme.rich(f"  ({kind})   step {latest.step}", theme.MUTED)
        stats = [("mean", f"{layer.mean:.3g}"), ("std", f"{layer.std:.3g}"), ("zero", f"{100 * layer.zero_fraction:.1f}%")]
        if layer.saturated_fraction is not None:
            stats.append(("saturated", f"{100 * layer.saturated_fraction:.1f}%"))
        for label, value in stats:
            text += theme.rich(f"   {label} ", theme.MUTED) + theme.rich(value, theme.ACTIVATION, bold=True)
        self.header.setText(text)
