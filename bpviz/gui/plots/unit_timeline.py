"""A units × steps image: each unit's share of active samples per step, with markers on chosen units.

The dead-units view marks the units dead now (right of the newest step), the
workbench marks where each dead unit died; both draw the activity the same way.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore

from bpviz.gui import theme
from bpviz.gui.plots.held_columns import held_columns


class UnitTimeline:
    """A plot widget holding the activity image (x = step, y = unit) and one scatter of markers."""

    def __init__(self, left: str, **marker) -> None:
        self.widget = theme.plot_widget(left=left, bottom="step", grid=False)
        self.plot = self.widget.getPlotItem()
        self.image = pg.ImageItem(axisOrder="col-major")  # image[step, unit]
        self.image.setColorMap(theme.colormap(theme.ACTIVITY_COLORMAP))
        self.plot.addItem(self.image)
        self.markers = pg.ScatterPlotItem(**marker)
        self.plot.addItem(self.markers)

    def show(self, steps: np.ndarray, activity: np.ndarray) -> None:
        """Draw `activity[step, unit]` (0 silent .. 1 always active) over `steps`, one pixel row per unit, each
        step's column standing until the next step's (see held_columns)."""
        self.image.setImage(activity[held_columns(steps)], autoLevels=False, levels=(0.0, 1.0))
        self.image.setRect(QtCore.QRectF(steps[0] - 0.5, -0.5, float(steps[-1] - steps[0] + 1), activity.shape[1]))

    def mark(self, x, y) -> None:
        """Markers at (step, unit row) pairs."""
        self.markers.setData(x=np.asarray(x, dtype=np.float64), y=np.asarray(y, dtype=np.float64))

    def clear(self) -> None:
        """No image, and the axes back to their own ranges: a new run's are not the last one's."""
        self.image.clear()
        self.markers.setData([], [])
        # with nothing to fit, auto-range keeps whatever range it had: the last run's steps and counts stayed
        self.plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
        self.plot.enableAutoRange()
