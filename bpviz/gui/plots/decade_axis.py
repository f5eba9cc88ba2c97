"""A left axis for log10-scaled plots, labelled at powers of ten only, as many as fit.

When a log plot is short, pyqtgraph finds no whole-decade spacing and labels
every minor tick (2x, 3x, ... 9x of each decade) instead: the labels pile on
top of each other. Gradient norms span decades, so powers of ten say enough.
"""

from __future__ import annotations

import math

import pyqtgraph as pg

MIN_LABEL_SPACING_PX = 16.0


class DecadeAxis(pg.AxisItem):
    """Labels 10^k for whole k in view, every n-th decade when they would not fit one apart."""

    def __init__(self, orientation: str = "left") -> None:
        super().__init__(orientation)

    def tickValues(self, minVal: float, maxVal: float, size: float) -> list[tuple[float, list[float]]]:
        lo, hi = sorted((minVal, maxVal))
        first, last = math.ceil(lo), math.floor(hi)
        if last < first:  # no power of ten in view: one label in the middle says the scale
            return [(1.0, [(lo + hi) / 2])]
        fit = max(1, int(size // MIN_LABEL_SPACING_PX))
        every = max(1, math.ceil((last - first + 1) / fit))
        return [(float(every), [float(k) for k in range(first, last + 1) if k % every == 0])]
