"""A bottom axis whose ticks are layer names: abbreviated, slanted, and thinned so they never overlap."""

from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6 import QtCore, QtGui

from bpviz.gui import theme

MAX_CHARS = 14


def abbreviate(name: str, limit: int = MAX_CHARS) -> str:
    """A short label for a layer: its last dotted parts that fit in `limit` characters, elided with '…'."""
    if len(name) <= limit:
        return name
    parts = name.split(".")
    tail = parts[-1]
    for part in reversed(parts[:-1]):
        if len(part) + 1 + len(tail) > limit - 1:
            break
        tail = f"{part}.{tail}"
    if len(tail) > limit - 1:
        return tail[: limit - 1] + "…"
    return "…" + tail


class LayerAxis(pg.AxisItem):
    """Bottom axis for a plot whose x is the layer index; draws names at 40° and skips some when crowded."""

    ANGLE = 40.0
    MIN_SPACING_PX = 18.0  # distance between neighbouring slanted labels, along the axis

    def __init__(self) -> None:
        super().__init__("bottom")
        self._names: list[str] = []
        self._labels: list[str] = []
        self.setHeight(86)
        self.setStyle(tickTextOffset=2)

    def set_names(self, names: list[str]) -> None:
        """The layer names, index i at x = i."""
        names = list(names)
        if names == self._names:
            return
        self._names = names
        self._labels = [abbreviate(n) for n in names]
        self.picture = None
        self.update()

    def tickValues(self, minVal: float, maxVal: float, size: float):  # noqa: N802 (pyqtgraph API)
        if not self._names or size <= 0 or maxVal <= minVal:
            return []
        lo = max(0, math.ceil(minVal))
        hi = min(len(self._names) - 1, math.floor(maxVal))
        if hi < lo:
            return []
        px_per_layer = size / (maxVal - minVal)
        stride = max(1, math.ceil(self.MIN_SPACING_PX / px_per_layer))
        start = math.ceil(lo / stride) * stride
        return [(float(stride), [float(v) for v in range(start, hi + 1, stride)])]

    def tickStrings(self, values, scale, spacing):  # noqa: N802 (pyqtgraph API)
        return [self._labels[int(round(v))] if 0 <= round(v) < len(self._labels) else "" for v in values]

    def boundingRect(self):  # noqa: N802 (Qt API)
        # slanted labels of the first layers reach left, under the left axis; widening the right side too
        # keeps pyqtgraph from dropping the last labels, whose unrotated boxes would stick out there
        return super().boundingRect().adjusted(-theme.AXIS_WIDTH, 0, theme.AXIS_WIDTH, 0)

    def drawPicture(self, p, axisSpec, tickSpecs, textSpecs):  # noqa: N802 (pyqtgraph API)
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, False)
        p.setRenderHint(QtGui.QPainter.RenderHint.TextAntialiasing, True)
        pen, p1, p2 = axisSpec
        p.setPen(pen)
        p.drawLine(p1, p2)
        for pen, t1, t2 in tickSpecs:
            p.setPen(pen)
            p.drawLine(t1, t2)
        if self.style["tickFont"] is not None:
            p.setFont(self.style["tickFont"])
        p.setPen(self.textPen())
        metrics = QtGui.QFontMetricsF(p.font())
        top = max(0, self.style["tickLength"]) + self.style["tickTextOffset"][1] + 2
        for rect, _flags, text in textSpecs:
            width = metrics.horizontalAdvance(text)
            height = metrics.height()
            p.save()
            p.translate(rect.center().x(), top)
            p.rotate(-self.ANGLE)
            p.drawText(
                QtCore.QRectF(-width - 2, -height / 2, width + 2, height),
                int(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter),
                text,
            )
            p.restore()
