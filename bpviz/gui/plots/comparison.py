"""File > Compare With...: the second run drawn over the first, at the same step, in the views that compare best.

Its loss curve over the first run's, its gradient norm per layer over the
gradient-flow bars (matched by layer name), and the selected layer's
activation histogram over the current one, all dashed in the comparison
colour. The divergence step is a mark on every time axis (the run's marks,
added by the recording), so this only draws the second run's curves.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore

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
        self.loss = loss.plot.plot(pen=_dashed(1.5), name="compared run")
        self.flow = flow.flow.plot(
            pen=_dashed(1.2), symbol="o", symbolSize=7, symbolPen=None, symbolBrush=theme.brush(theme.COMPARED)
        )
        self.flow.setZValue(8)
        self.histogram = histogram.histogram_plot.plot(stepMode="center", pen=_dashed(1.6))
        self.histogram.setZValue(8)

    def draw(self, view: str, other: History | None, layer: str | None) -> None:
        """View `view` was drawn: draw `other` (the second run at the step shown; None: no comparison) over it.

        Each overlay is drawn with its own view, so a view drawn late (a tab shown after
        the step changed) gets the second run at the same moment as the first.
        """
        if view == "loss":
            steps, losses = (other.loss_steps, other.losses) if other is not None else ([], [])
            self.loss.setData(
                np.asarray(steps, dtype=np.float64), np.asarray(losses, dtype=np.float64), connect="finite"
            )
        elif view == "gradient_flow":
            self._draw_flow(None if other is None else other.latest)
        elif view == "activations":
            latest = None if other is None else other.latest
            found = find_layer(latest, layer) if latest is not None and layer is not None else None
            hist = found.histogram if found is not None else None
            self.histogram.setData(*((hist.edges, hist.counts) if hist is not None else ([], [])))

    def _draw_flow(self, latest: StepRecord | None) -> None:
        """The second run's norm of each layer on the bars (matched by name) the flow view has drawn."""
        if latest is None:
            self.flow.setData([], [])
            return
        names, norms, _states = flow_at(latest)
        by_name = dict(zip(names, norms))
        shown = self.flow_view.names
        x = np.arange(len(shown), dtype=np.float64)
        y = np.asarray([by_name.get(name, np.nan) for name in shown], dtype=np.float64)
        self.flow.setData(x, y, connect="finite")
