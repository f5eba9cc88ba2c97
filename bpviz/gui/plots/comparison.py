"""File > Compare With...: the second run drawn over the first, at the same step, in the views that compare best.

Its loss curve over the first run's, its gradient norm per layer over the
gradient-flow bars (matched by layer name), and the selected layer's
activation histogram over the current one, all dashed in the comparison
colour. Each of those views gets a legend naming both runs, since a dashed
curve alone does not say which run it is. On the economy level's plain
steps a run has no histogram of its own: the second run's latest one before
the step is drawn, and its legend entry says from which step. The
divergence step is a mark on every time axis (the run's marks, added by the
recording), so this only draws the second run's curves.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from bpviz.engine.record.history import History
from bpviz.engine.record.records import StepRecord
from bpviz.gui import theme
from bpviz.gui.plots.gradient_flow_view import GradientFlowView, flow_at
from bpviz.gui.plots.histogram_view import HistogramView
from bpviz.gui.plots.loss_view import LossView
from bpviz.gui.plots.traces import find_layer


def _dashed(width: float) -> pg.QtGui.QPen:
    pen = theme.pen(theme.COMPARED, width)
    pen.setStyle(QtCore.Qt.PenStyle.DashLine)
    return pen


class Comparison:
    """Overlay curves for the second run in the loss, gradient-flow and histogram views; empty until `draw`s one."""

    def __init__(self, loss: LossView, flow: GradientFlowView, histogram: HistogramView) -> None:
        self.flow_view = flow
        self.loss = loss.plot.plot(pen=_dashed(1.5))
        self.flow = flow.flow.plot(  # ringed in the background's colour: the dots sit on orange bars
            pen=_dashed(1.2),
            symbol="o",
            symbolSize=8,
            symbolPen=theme.pen(theme.BACKGROUND, 1.5),
            symbolBrush=theme.brush(theme.COMPARED),
        )
        self.flow.setZValue(8)
        self.histogram = histogram.histogram_plot.plot(stepMode="center", pen=_dashed(1.6))
        self.histogram.setZValue(8)
        self.legends = {  # each view's own curve, then the compared run's dashed one
            "loss": _RunLegend(loss, theme.rich("━", theme.LOSS), "╌╌"),
            "gradient_flow": _RunLegend(flow, theme.rich("▮", theme.GRADIENT), "╌●╌"),
            "activations": _RunLegend(histogram, theme.rich("▮", theme.ACTIVATION), "╌╌"),
        }

    def draw(
        self,
        view: str,
        other: History | None,
        layer: str | None,
        names: tuple[str, str] = ("", ""),
        shown: int | None = None,
    ) -> None:
        """View `view` was drawn at step `shown`: draw `other` (the second run at that step, or at its last when
        it is shorter; None: no comparison) over it, with a legend naming this run and the other (`names`),
        and the other's step where it is not the one shown.

        Each overlay is drawn with its own view, so a view drawn late (a tab shown after
        the step changed) gets the second run at the same moment as the first.
        """
        this, compared = names
        latest = None if other is None else other.latest
        at = f" (its step {latest.step})" if latest is not None and shown is not None and latest.step != shown else ""
        if view == "loss":
            steps, losses = (other.loss_steps, other.losses) if other is not None else ([], [])
            self.loss.setData(
                np.asarray(steps, dtype=np.float64), np.asarray(losses, dtype=np.float64), connect="finite"
            )
        elif view == "gradient_flow":
            matched = self._draw_flow(latest)
            total = len(self.flow_view.names)
            compared += at
            if latest is not None and matched < total:  # layers are matched by name: say what has no twin
                compared += " (no layer of these names)" if matched == 0 else f" ({matched} of {total} layers)"
        elif view == "activations":
            present, held = self._draw_histogram(other, layer)
            compared = f"{compared} (histogram of step {held})" if held is not None else compared + at
            if latest is not None and layer is not None and not present:
                compared += f" (no layer {layer})"
        else:
            return
        self.legends[view].show(None if other is None else (this, compared))

    def _draw_histogram(self, other: History | None, layer: str | None) -> tuple[bool, int | None]:
        """The second run's histogram of `layer` at the step shown, or on a step without one its latest before;
        whether that run has the layer, and the step of the histogram when it is an earlier one."""
        latest = None if other is None else other.latest
        found = find_layer(latest, layer) if latest is not None and layer is not None else None
        hist, held = (found.histogram if found is not None else None), None
        if hist is None and found is not None and not latest.detailed:
            taken = other.histogram_at(found.name)
            if taken is not None:
                held, hist = taken
        self.histogram.setData(*((hist.edges, hist.counts) if hist is not None else ([], [])))
        return found is not None, held

    def _draw_flow(self, latest: StepRecord | None) -> int:
        """The second run's norm of each layer on the bars (matched by name) the flow view has drawn; how many of
        those layers the second run has."""
        if latest is None:
            self.flow.setData([], [])
            return 0
        names, norms, _states = flow_at(latest)
        by_name = dict(zip(names, norms))
        shown = self.flow_view.names
        x = np.arange(len(shown), dtype=np.float64)
        y = np.asarray([by_name.get(name, np.nan) for name in shown], dtype=np.float64)
        self.flow.setData(x, y, connect="finite")
        return sum(name in by_name for name in shown)


class _RunLegend:
    """Which curve is which run, on a line under a view's header (a legend inside the plot covers its data);
    shown only while a second run is overlaid."""

    def __init__(self, view: QtWidgets.QWidget, own: str, compared: str) -> None:
        self.label = theme.header_label()
        self.label.hide()
        view.layout().insertWidget(1, self.label)  # under the view's header
        self._samples = (own + " ", theme.rich(compared + " ", theme.COMPARED, bold=True))
        self._names: tuple[str, str] | None = None

    def show(self, names: tuple[str, str] | None) -> None:
        """Name this run and the compared one (None: no comparison, no line)."""
        if names == self._names:
            return
        self._names = names
        self.label.setVisible(names is not None)
        if names is not None:
            own, compared = self._samples
            this, other = names
            # the compared run first: a narrow view leaves out the last part, and this run is in the title
            parts = [compared + theme.rich(other + "   ", theme.COMPARED), own + theme.rich(this, theme.MUTED)]
            self.label.set_parts(parts)

    @property
    def names(self) -> tuple[str, str] | None:
        """The runs named, this one first; None when hidden."""
        return self._names
