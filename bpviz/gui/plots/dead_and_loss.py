"""A layer's dead-unit count and the training loss over the same steps: the workbench's before/after picture.

While an activation swapped in for a ReLU (LeakyReLU, GELU) passes its
silent units a gradient, they are inactive, not dead: a curve of their own,
dashed, listed in the legend only while the layer has such steps.

The loss has its own y axis on the right (a second ViewBox linked on x), so
both curves keep their scale while sharing the step axis. The key is one row
above the plot, where a plot title would be: drawn over the plot, it hid the
newest steps, those a remedy's effect shows in.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from bpviz.gui import theme
from bpviz.gui.plots.intervention_marks import InterventionMarks


class DeadAndLossCurves:
    """The plot widget with the dead-units curve (left axis), the loss (right axis) and the remedy marks."""

    def __init__(self) -> None:
        self.widget = theme.plot_widget(left="dead units", bottom="step")
        self.plot = self.widget.getPlotItem()
        self.legend = pg.LegendItem(colCount=3, labelTextColor=theme.FOREGROUND, frame=False, labelTextSize="8pt")
        # the key's width never widens the plot past its pane (the plot's right part, its loss axis, was cut off)
        self.legend.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
        self.legend.setMinimumWidth(0)
        self.plot.layout.removeItem(self.plot.titleLabel)  # the plot has no title: its row holds the key
        self.plot.titleLabel.hide()
        self.plot.layout.addItem(self.legend, 0, 1, alignment=QtCore.Qt.AlignmentFlag.AlignLeft)
        self.dead_curve = self.plot.plot(pen=theme.pen(theme.BAD, 2.0))
        self.legend.addItem(self.dead_curve, "dead units")
        inactive_pen = theme.pen(theme.MUTED, 1.6)
        inactive_pen.setStyle(QtCore.Qt.PenStyle.DashLine)
        self.inactive_curve = self.plot.plot(pen=inactive_pen)
        self.loss_box = pg.ViewBox()
        self.plot.showAxis("right")
        self.plot.scene().addItem(self.loss_box)
        right = self.plot.getAxis("right")
        theme.style_axis(right)  # a loss under 1 read "loss (x0.001)" over ticks of 300 and 400
        right.setStyle(maxTickLevel=0)  # major ticks only, like the left axis: in a low plot the minor ones overlapped
        right.linkToView(self.loss_box)
        right.setLabel("loss", color=theme.LOSS)
        right.setTextPen(theme.pen(theme.LOSS, 1))
        right.setWidth(48)
        self.loss_box.setXLink(self.plot)
        self.loss_box.enableAutoRange(axis=pg.ViewBox.YAxis)
        self.loss_curve = pg.PlotDataItem(pen=theme.pen(theme.LOSS, 1.4))
        self.loss_box.addItem(self.loss_curve)
        self.legend.addItem(self.loss_curve, "loss (right)")
        self.plot.getViewBox().sigResized.connect(self._sync_loss_box)
        self.marks = InterventionMarks(self.plot, labels=True)

    def show_silent(self, steps, dead, inactive) -> None:
        """The dead and the inactive units of the layer at `steps`."""
        self.dead_curve.setData(steps, dead)
        shown = bool(np.any(np.asarray(inactive)))
        self.inactive_curve.setData(steps if shown else [], inactive if shown else [])
        listed = self.legend.getLabel(self.inactive_curve) is not None
        if shown and not listed:
            self.legend.addItem(self.inactive_curve, "inactive")
        elif listed and not shown:
            self.legend.removeItem(self.inactive_curve)

    def clear(self) -> None:
        """No curves, and the axes back to their own ranges: a new run's are not the last one's."""
        self.show_silent([], [], [])
        self.loss_curve.setData([], [])
        self.marks.clear()
        # with nothing to fit, auto-range keeps whatever range it had: the last run's steps and counts stayed
        self.plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
        self.plot.enableAutoRange()
        self.loss_box.enableAutoRange(axis=pg.ViewBox.YAxis)

    def _sync_loss_box(self) -> None:
        self.loss_box.setGeometry(self.plot.getViewBox().sceneBoundingRect())
        self.loss_box.linkedViewChanged(self.plot.getViewBox(), self.loss_box.XAxis)
