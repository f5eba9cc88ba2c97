"""The Step panel's plots: the live tensor of a paused step as a histogram, and an update's ‖ΔW‖/‖W‖ as bars.

Drawn from a PhaseEvent (one pause), not from History, so they are not
PlotViews; the panel around them says what they show.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg

from bpviz.gui import theme

BINS = 60
MAX_BARS = 40  # update ratios shown: the largest this many parameters


def histogram(values: np.ndarray, bins: int = BINS) -> tuple[np.ndarray, np.ndarray]:
    """(edges, counts) over the finite values; one bin around a constant."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.array([0.0, 1.0]), np.array([0.0])
    lo, hi = float(finite.min()), float(finite.max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(finite, bins=bins, range=(lo, hi))
    return edges, counts.astype(np.float64)


class TensorHistogram:
    """A histogram of a sample of the live tensor (a layer's output, or the gradient arriving at it)."""

    def __init__(self) -> None:
        self.widget = theme.plot_widget(left="count", bottom="value")
        self.plot = self.widget.getPlotItem()
        self.bars = pg.BarGraphItem(x0=[], x1=[], height=[], y0=0, pen=None, brush=theme.brush(theme.ACTIVATION))
        self.plot.addItem(self.bars)

    def show(self, values: np.ndarray, colour: str, label: str) -> None:
        """Bin the finite `values`, drawn in `colour` over an x axis called `label`."""
        edges, counts = histogram(np.asarray(values, dtype=np.float64))
        self.bars.setOpts(x0=edges[:-1], x1=edges[1:], height=counts, brush=theme.brush(colour, 0.85))
        self.plot.setLabel("bottom", label, color=theme.FOREGROUND)
        self.plot.setXRange(edges[0], edges[-1], padding=0.02)
        self.plot.setYRange(0, max(float(counts.max()), 1.0), padding=0.05)


class UpdateRatioBars:
    """log10 ‖ΔW‖/‖W‖ per parameter of the update just made, largest first, one named bar each."""

    def __init__(self) -> None:
        self.axis = pg.AxisItem("left")
        self.widget = theme.plot_widget(bottom="log10 ‖ΔW‖/‖W‖", axis_items={"left": self.axis})
        self.plot = self.widget.getPlotItem()
        self.plot.showGrid(x=True, y=False, alpha=theme.GRID_ALPHA)
        self.bars = pg.BarGraphItem(x0=[], width=[], y=[], height=0.7, pen=None, brush=theme.brush(theme.VALIDATION))
        self.plot.addItem(self.bars)

    def show(self, ratios: dict[str, float]) -> float:
        """Draw the largest MAX_BARS ratios; returns the median of those shown (NaN when none)."""
        items = sorted(ratios.items(), key=lambda kv: -(kv[1] if math.isfinite(kv[1]) else 1e300))[:MAX_BARS]
        names = [name for name, _ in items]
        logs = np.array([math.log10(v) if v > 0 and math.isfinite(v) else -12.0 for _, v in items], dtype=np.float64)
        y = np.arange(len(items), dtype=np.float64)
        low = float(min(logs.min(), -6.0)) if len(logs) else -6.0
        self.bars.setOpts(x0=np.full(len(items), low), width=logs - low, y=y, height=0.7)
        self.axis.setTicks([[(float(i), name) for i, name in enumerate(names)]])
        self.plot.setYRange(-0.6, max(len(items), 1) - 0.4, padding=0)
        self.plot.setXRange(low, float(max(logs.max(), -1.0)) if len(logs) else 0.0, padding=0.05)
        self.axis.setWidth(
            min(max((max((len(n) for n in names), default=4)) * 7, 50), 110)
        )  # about a third of the Step dock: long names must not widen it
        return float(np.median([v for _, v in items])) if items else float("nan")
