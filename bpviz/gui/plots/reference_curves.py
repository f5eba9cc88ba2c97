"""Faint context curves: one scalar per step for a handful of layers spread from input to output."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from bpviz.engine.record.history import History
from bpviz.gui import theme
from bpviz.gui.plots.traces import Extract, LayerTrace


def spread_in_depth(names: list[str], limit: int) -> list[str]:
    """At most `limit` of `names` (in forward order), evenly spaced, always keeping the first and the last."""
    if len(names) <= limit:
        return list(names)
    picks = np.unique(np.round(np.linspace(0, len(names) - 1, limit)).astype(int))
    return [names[i] for i in picks]


class ReferenceCurves:
    """Faint curves of a few layers behind a selected one, coloured by depth (dark = input), updated incrementally."""

    def __init__(self, plot: pg.PlotItem, extract: Extract, limit: int, alpha: float) -> None:
        self._plot = plot
        self._extract = extract
        self._limit = limit
        self._alpha = alpha
        self.curves: dict[str, pg.PlotDataItem] = {}
        self._traces: dict[str, LayerTrace] = {}
        self._candidates: list[str] = []

    def set_layers(self, names: list[str]) -> None:
        """The candidate layers in forward order; at most `limit` of them are drawn."""
        if names == self._candidates:
            return
        self._candidates = list(names)
        chosen = spread_in_depth(names, self._limit)
        self._traces = {n: self._traces.get(n) or LayerTrace(n, self._extract) for n in chosen}
        for name in [n for n in self.curves if n not in self._traces]:
            self._plot.removeItem(self.curves.pop(name))
        for name, colour in zip(chosen, theme.depth_colors(len(chosen))):
            colour.setAlphaF(self._alpha)
            if name not in self.curves:
                self.curves[name] = self._plot.plot()
            self.curves[name].setPen(pg.mkPen(colour, width=1.0))

    def update(self, history: History) -> None:
        """Append what each drawn layer gained since the last update."""
        for name, trace in self._traces.items():
            if trace.update(history):
                self.curves[name].setData(trace.steps, trace.values, connect="finite")
