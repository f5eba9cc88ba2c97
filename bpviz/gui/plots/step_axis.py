"""A bottom axis for training steps: whole numbers only.

Steps are counted, never fractional; pyqtgraph labels 0.5, 1.5, … when only a
few steps are shown, which reads as if half steps existed.
"""

from __future__ import annotations

import math

import pyqtgraph as pg


class StepAxis(pg.AxisItem):
    """Ticks at whole steps, at a spacing of at least one step."""

    def __init__(self, orientation: str = "bottom") -> None:
        super().__init__(orientation)

    def tickValues(self, minVal: float, maxVal: float, size: float) -> list[tuple[float, list[float]]]:  # noqa: N802
        levels = [
            (spacing, [v for v in values if float(v).is_integer()])
            for spacing, values in super().tickValues(minVal, maxVal, size)
            if spacing >= 1
        ]
        levels = [(spacing, values) for spacing, values in levels if values]
        if levels:
            return levels
        lo, hi = sorted((minVal, maxVal))
        return [(1.0, [float(k) for k in range(math.ceil(lo), math.floor(hi) + 1)])]

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:  # noqa: N802
        return [str(int(round(v * scale))) for v in values]
