"""The selected layer's value distribution: its histogram now, and activation/gradient histograms over time."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from bpviz.engine.record.history import History
from bpviz.engine.record.records import Histogram, LayerStep
from bpviz.engine.report.percent import percent_text
from bpviz.gui import theme
from bpviz.gui.plots.base import PlotView, show_empty_frame
from bpviz.gui.plots.held_columns import held_columns
from bpviz.gui.plots.intervention_marks import InterventionMarks
from bpviz.gui.plots.rebin import common_bins, rebin
from bpviz.gui.plots.traces import LayerTrace, reads

OUTSIDE = 3  # a trace row: lo, hi, then these three counts (below, above, NaN/Inf), then the bins
ROW_HEAD = 2 + OUTSIDE
NOT_TAKEN = "no histogram at this step (economy: detailed steps only)"
HELD = "step {step}'s histogram, the latest taken"


def _row(hist: Histogram | None) -> np.ndarray | None:
    """A histogram as one trace row: its edges travel with its counts, since they change when values leave them."""
    if hist is None:
        return None
    return np.concatenate([[hist.lo, hist.hi, hist.below, hist.above, hist.nonfinite], hist.counts])


def _percent(pct: float) -> str:
    """ "100%", "12%", "0.2%": two significant digits, never "1e+02%"."""
    return percent_text(pct / 100, 0) if pct >= 10 else f"{pct:.2g}%"


def outside_text(hist: Histogram, log10: bool) -> list[tuple[str, str]]:
    """(text, colour) for each kind of value the bins do not show: below, above, NaN/Inf, as shares of all values."""
    total = hist.total or 1.0

    def share(count: float) -> str:
        if count < 0.001 * total:
            return f"{count:.0f}"  # a handful of values: the count says more than "0.01%"
        return _percent(100 * count / total)

    def edge(value: float) -> str:
        return f"1e{value:.0f}" if log10 else f"{value:.3g}"

    parts = []
    if hist.nonfinite:
        parts.append((f"{share(hist.nonfinite)} NaN/Inf", theme.BAD))
    if hist.below:
        what = "zero or below" if log10 else "below"
        parts.append((f"{share(hist.below)} {what} {edge(hist.lo)}", theme.ZERO_GRADIENT if log10 else theme.HIGHLIGHT))
    if hist.above:
        parts.append((f"{share(hist.above)} above {edge(hist.hi)}", theme.HIGHLIGHT))
    return parts


def outside_html(hist: Histogram, log10: bool) -> str:
    """`outside_text` as the lines of a plot's corner label."""
    return "<br>".join(theme.rich(text, colour, bold=True) for text, colour in outside_text(hist, log10))


def histogram_of(row: np.ndarray, log10: bool) -> Histogram:
    """The Histogram a trace row (`_row`'s layout) was made from."""
    return Histogram(row[ROW_HEAD:], row[0], row[1], log10, *row[2:ROW_HEAD])


NOTE_MARGIN = 4  # px between a heatmap's corner note and the plot's edges


class HistogramHeatmap:
    """One histogram-over-time heatmap: x = step, y = value, colour = log(1 + count).

    Columns on different edges (the layer's values left its range) are rebinned onto
    common edges; steps with values outside the edges or NaN/Inf get a mark at the edge.
    """

    def __init__(self, widget: pg.PlotWidget, colormap: str, grad: bool) -> None:
        self.widget = widget
        self.plot = widget.getPlotItem()
        self.image = pg.ImageItem(axisOrder="col-major")  # image[step, bin]: x = step, y = bin
        self.image.setColorMap(theme.colormap(colormap))
        self.plot.addItem(self.image)
        self.outside_marks = pg.ScatterPlotItem(size=7, pen=None)
        self.outside_marks.setZValue(5)
        self.plot.addItem(self.outside_marks)
        self.empty = pg.TextItem("", color=theme.MUTED, anchor=(0.5, 0.5))
        self.plot.addItem(self.empty)
        self.note = pg.TextItem("", anchor=(0, 0))  # the latest step's values outside the bins, pinned to a corner
        self.note.setParentItem(self.plot.getViewBox())
        self.note.setPos(NOTE_MARGIN, 2)
        # wrapped at the plot's width: one line was cut at a narrow heatmap ("96% zero or below 1e-")
        self.plot.getViewBox().sigResized.connect(self._wrap_note)
        self.marks = InterventionMarks(self.plot)
        self._grad = grad
        self._level_max = 1.0
        self.trace: LayerTrace | None = None
        self.bounds: tuple[float, float] = (0.0, 1.0)
        self._show_empty("")  # a plain 0..1 frame until there is data: an empty image's range reads ±1e-149

    def _wrap_note(self, view: pg.ViewBox) -> None:
        self.note.setTextWidth(max(1.0, view.width() - 2 * NOTE_MARGIN))

    def select(self, name: str | None) -> None:
        """Follow layer `name` (None: nothing)."""
        attr = "grad_histogram" if self._grad else "histogram"
        self.trace = None if name is None else LayerTrace(name, reads(attr)(lambda layer: _row(getattr(layer, attr))))
        self._level_max = 1.0

    def update(self, history: History, layer: LayerStep | None) -> bool:
        """Append new columns; True when the image changed."""
        if self.trace is None or not self.trace.update(history):
            if self.trace is None:
                self._show_empty("select a layer")
            return False
        rows, steps = self.trace.values, self.trace.steps
        if len(steps) == 0:
            self._show_empty("no gradient histograms yet" if self._grad else "no histograms for this layer")
            return True
        self.empty.setText("")
        los, his, counts = rows[:, 0], rows[:, 1], rows[:, ROW_HEAD:]
        lo, hi, bins = common_bins(los, his, counts.shape[1])
        if bins != counts.shape[1] or (los != lo).any() or (his != hi).any():
            counts = rebin(counts, los, his, lo, hi, bins)
        values = np.log1p(np.maximum(counts, 0.0))  # a few outliers stay visible next to a crowded bin
        self.bounds = (lo, hi)
        self._level_max = max(self._level_max, float(values.max()))  # levels only grow: colours stay comparable
        x0, x1 = steps[0] - 0.5, steps[-1] + 0.5
        self.image.setImage(values[held_columns(steps)], autoLevels=False, levels=(0.0, self._level_max))
        self.image.setRect(QtCore.QRectF(x0, lo, x1 - x0, hi - lo))
        self._mark_outside(steps, rows, lo, hi)
        self.note.setHtml(outside_html(histogram_of(rows[-1], self._grad), self._grad))
        # explicit ranges: the two heatmaps share x, and an auto range would follow the empty one
        self.plot.setRange(xRange=(x0, x1), yRange=(lo, hi), padding=0)
        return True

    def _mark_outside(self, steps: np.ndarray, rows: np.ndarray, lo: float, hi: float) -> None:
        """A mark on the bottom edge for steps with values below their edges, on the top for above or NaN/Inf."""
        below, above, nonfinite = rows[:, 2] > 0, rows[:, 3] > 0, rows[:, 4] > 0
        inset = 0.02 * (hi - lo)
        low_colour = theme.ZERO_GRADIENT if self._grad else theme.HIGHLIGHT
        groups = [
            (steps[below], lo + inset, "t1", theme.brush(low_colour)),
            (steps[above & ~nonfinite], hi - inset, "t", theme.brush(theme.HIGHLIGHT)),
            (steps[nonfinite], hi - inset, "x", theme.brush(theme.BAD)),
        ]
        # one brush object per kind, in arrays: a long recording marks thousands of steps, and a spot dict
        # with its own brush each made pyqtgraph render every symbol anew
        self.outside_marks.setData(
            x=np.concatenate([g[0] for g in groups]).astype(np.float64),
            y=np.concatenate([np.full(len(g[0]), g[1]) for g in groups]),
            symbol=[g[2] for g in groups for _ in g[0]],
            brush=[g[3] for g in groups for _ in g[0]],
        )

    def _show_empty(self, text: str) -> None:
        self.image.clear()
        self.outside_marks.setData([])
        self.note.setHtml("")
        self.empty.setText(text)
        self.plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
        self.empty.setPos(0.5, 0.5)


class HistogramView(PlotView):
    """Current activation histogram (the previous step faint behind it) and histogram-over-time heatmaps."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setStyleSheet(theme.VIEW_STYLE)
        self.header = theme.header_label()
        self.header.setTextFormat(QtCore.Qt.TextFormat.RichText)

        self.histogram_widget = theme.plot_widget(left="count", bottom="activation value", grid=False)
        self.histogram_plot = self.histogram_widget.getPlotItem()
        self.previous_curve = self.histogram_plot.plot(
            stepMode="center", pen=theme.pen(theme.MUTED, 1.2), fillLevel=0, brush=theme.brush(theme.MUTED, 0.18)
        )
        self.current_curve = self.histogram_plot.plot(
            stepMode="center",
            pen=theme.pen(theme.ACTIVATION, 1.6),
            fillLevel=0,
            brush=theme.brush(theme.ACTIVATION, 0.35),
        )
        # values outside the edges, as bars one bin beyond each edge: never folded into the edge bins
        self.outside_bars = pg.BarGraphItem(x0=[], x1=[], height=[], pen=None, brush=theme.brush(theme.HIGHLIGHT, 0.8))
        self.histogram_plot.addItem(self.outside_bars)
        # on a backing: pinned over the bars, it was drawn across the tall bar at zero of a ReLU's histogram
        self.outside_label = pg.TextItem("", color=theme.HIGHLIGHT, anchor=(0, 0), fill=theme.brush(theme.PANEL, 0.8))
        self.outside_label.setParentItem(self.histogram_plot.getViewBox())  # pinned to the plot's corner
        self.outside_label.setPos(6, 4)

        self.activation_map = HistogramHeatmap(
            theme.plot_widget(title="activations over time", left="value", bottom="step", grid=False),
            theme.ACTIVATION_COLORMAP,
            grad=False,
        )
        self.gradient_map = HistogramHeatmap(
            theme.plot_widget(title="gradients over time", left="log₁₀|∂L/∂out|", bottom="step", grid=False),
            theme.GRADIENT_COLORMAP,
            grad=True,
        )

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

        self._set_header(None, None)

    # --- PlotView -------------------------------------------------------------------------------------

    def _layer_changed(self, name: str | None) -> None:
        """Show layer `name` (None: nothing)."""
        self.activation_map.select(name)
        self.gradient_map.select(name)
        self.current_curve.setData([], [])
        self.previous_curve.setData([], [])
        if self._history is None:
            self._set_header(None, None)

    def refresh(self, history: History) -> None:
        """Redraw from `history`, reading only records newer than the last drawn."""
        self._history = history
        for heatmap in (self.activation_map, self.gradient_map):
            heatmap.marks.update(history)  # remedies land between steps, before any new record
        latest = history.latest
        if not self._is_new(latest):
            return
        layer = self._selected_step(latest)
        if latest is None:
            show_empty_frame(self.histogram_plot)
        self.activation_map.update(history, layer)
        self.gradient_map.update(history, layer)
        self._draw_current(layer, taken=latest is None or latest.detailed)
        self._set_header(latest, layer)

    def export_targets(self) -> dict[str, QtWidgets.QWidget]:
        """The histogram and the two heatmaps, for PNG/SVG export."""
        return {
            "histogram": self.histogram_widget,
            "activation histograms over time": self.activation_map.widget,
            "gradient histograms over time": self.gradient_map.widget,
        }

    # --- drawing --------------------------------------------------------------------------------------

    def _draw_current(self, layer: LayerStep | None, taken: bool) -> None:
        """The selected layer's histogram at the shown step; `taken`: the step was a detailed one. A step without
        one (economy, not a detailed step: most steps of a recording) shows the latest taken before it, named
        with its step, rather than an empty frame on nine steps of ten."""
        trace = self.activation_map.trace
        hist = None if layer is None else layer.histogram
        held = None  # the step of the histogram shown in place of the shown step's missing one
        if hist is None and layer is not None and not taken and self._history is not None:
            # asked of the history, not read off the heatmap: its columns are thinned to every k-th histogram
            found = self._history.histogram_at(layer.name)
            if found is not None:
                held, hist = found
        placed = hist is not None and (hist.counts.any() or hist.below or hist.above)
        if trace is None or len(trace) == 0 or not placed:
            for curve in (self.current_curve, self.previous_curve):
                curve.setData([], [])
            self.outside_bars.setOpts(x0=[], x1=[], height=[])
            # every value NaN/Inf: no axis to draw them on (a flat zero line on a made-up count axis would
            # read as a measured empty histogram), only the share in the corner. A step without a histogram
            # and none before it says so: the last step's axes, empty, would read as a histogram of nothing
            if hist is not None:
                self._set_outside(self._held_note(held), outside_html(hist, log10=False))
            else:
                self._set_outside("" if layer is None or taken else theme.rich(NOT_TAKEN, theme.MUTED))
            show_empty_frame(self.histogram_plot)  # with no layer selected too: the last layer's axes are not its
            return
        edges = hist.edges
        self.current_curve.setData(edges, hist.counts)
        rows = trace.values
        previous = rows[-2] if len(rows) >= 2 else None
        if previous is not None and previous.shape[0] == ROW_HEAD + len(hist.counts):
            counts = previous[ROW_HEAD:]
            if (previous[0], previous[1]) != (hist.lo, hist.hi):  # the edges moved: the previous step on today's
                counts = rebin(counts[None], previous[:1], previous[1:2], hist.lo, hist.hi, len(hist.counts))[0]
            self.previous_curve.setData(edges, counts)
        else:
            self.previous_curve.setData([], [])
        width = edges[1] - edges[0]
        sides = [(edges[0] - width, edges[0], hist.below), (edges[-1], edges[-1] + width, hist.above)]
        shown = [side for side in sides if side[2] > 0]
        self.outside_bars.setOpts(
            x0=[a for a, _, _ in shown], x1=[b for _, b, _ in shown], height=[c for _, _, c in shown]
        )
        self._set_outside(self._held_note(held), outside_html(hist, log10=False))

    def _set_outside(self, *lines: str) -> None:
        """The corner label's lines (the empty ones left out, or its backing grows an empty row); hidden when
        there are none (its backing alone would be a small box)."""
        html = "<br>".join(line for line in lines if line)
        self.outside_label.setHtml(html)
        self.outside_label.setVisible(bool(html))

    @staticmethod
    def _held_note(held: int | None) -> str:
        return "" if held is None else theme.rich(HELD.format(step=held), theme.MUTED)

    def _set_header(self, latest, layer: LayerStep | None) -> None:
        if self._selected is None:
            self.header.setText(theme.rich("histograms: select a layer", theme.MUTED))
            return
        name = theme.rich(self._selected, theme.SELECTED, bold=True)
        if layer is None:
            suffix = "   no steps yet" if latest is None else f"   not seen at step {latest.step}"
            self.header.set_parts([name, theme.rich(suffix, theme.MUTED)])
            return
        kind = layer.type if not layer.family or layer.family == layer.type.lower() else f"{layer.type}, {layer.family}"
        parts = [name, theme.rich(f"  ({kind})", theme.MUTED), theme.rich(f"   step {latest.step}", theme.MUTED)]
        stats = [
            ("mean", f"{layer.mean:.3g}"),
            ("std", f"{layer.std:.3g}"),
            ("zero", percent_text(layer.zero_fraction)),
        ]
        if layer.saturated_fraction is not None:
            stats.append(("saturated", percent_text(layer.saturated_fraction)))
        for label, value in stats:
            parts.append(theme.rich(f"   {label} ", theme.MUTED) + theme.rich(value, theme.ACTIVATION, bold=True))
        warnings = []  # first: a narrow header leaves out its last parts
        if layer.nonfinite:
            warnings.append(theme.badge("NaN/Inf in output"))
        hist = layer.histogram
        if hist is not None and (hist.below or hist.above):
            share = _percent(100 * (hist.below + hist.above) / (hist.total or 1))
            warnings.append(theme.rich(f"{share} outside the bins   ", theme.HIGHLIGHT, bold=True))
        self.header.set_parts(warnings + parts)
