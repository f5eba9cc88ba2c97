"""The network view's paint items: a layer (or collapsed block) node, a block's frame, and the colour legend.

Items report clicks through the callbacks they are given, so they hold no
reference to the view that places them.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6 import QtCore, QtGui, QtWidgets

from bpviz.gui import theme
from bpviz.gui.plots.network_graph import Block

NODE_W, NODE_H = 112, 48


class NodeItem(QtWidgets.QGraphicsItem):
    """One layer, or one collapsed block; painted by hand so marking it is a cheap `update()`."""

    def __init__(
        self, key: str, title: str, subtitle: str, on_click: Callable[[NodeItem], None], block: Block | None = None
    ) -> None:
        super().__init__()
        self.key, self.title, self.subtitle, self.block = key, title, subtitle, block
        self._on_click = on_click
        self.fill = QtGui.QColor(theme.NO_DATA)
        self.value_text = ""
        self.selected = False
        self.visited: str | None = None  # phase colour key when visited in the current phase
        self.current = False
        self.setAcceptHoverEvents(True)
        self.setCursor(QtCore.Qt.CursorShape.PointingHandCursor)

    def boundingRect(self) -> QtCore.QRectF:
        return QtCore.QRectF(-6, -6, NODE_W + 12, NODE_H + 12)

    def paint(self, painter: QtGui.QPainter, _option, _widget=None) -> None:
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        rect = QtCore.QRectF(0, 0, NODE_W, NODE_H)
        if self.current:
            glow = theme.color(theme.HIGHLIGHT, 0.35)
            painter.setPen(QtGui.QPen(glow, 8))
            painter.setBrush(QtCore.Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(rect.adjusted(-1, -1, 1, 1), 8, 8)
        border, width = QtGui.QColor(theme.NODE_BORDER), 1.0
        if self.visited:
            border, width = QtGui.QColor(theme.PHASE_COLOURS[self.visited]), 2.5
        if self.selected:
            border, width = QtGui.QColor(theme.SELECTED), 2.5
        if self.current:
            border, width = QtGui.QColor(theme.HIGHLIGHT), 3.5
        painter.setPen(QtGui.QPen(border, width))
        painter.setBrush(self.fill)
        if self.block is not None:  # a stack of cards: a collapsed block
            painter.drawRoundedRect(rect.translated(4, -4), 6, 6)
        painter.drawRoundedRect(rect, 6, 6)
        if self.visited:
            painter.setPen(QtCore.Qt.PenStyle.NoPen)
            painter.setBrush(theme.color(theme.PHASE_COLOURS[self.visited], 0.9))
            painter.drawRoundedRect(QtCore.QRectF(3, NODE_H - 6, NODE_W - 6, 3.5), 1.5, 1.5)
        light = self.fill.lightnessF() > 0.55
        ink = QtGui.QColor(theme.INK_ON_LIGHT if light else theme.INK_ON_DARK)
        soft = QtGui.QColor(theme.SOFT_INK_ON_LIGHT if light else theme.SOFT_INK_ON_DARK)
        font = QtGui.QFont()
        font.setPointSizeF(8.5)
        font.setBold(True)
        painter.setFont(font)
        painter.setPen(ink)
        metrics = QtGui.QFontMetrics(font)
        title = metrics.elidedText(self.title, QtCore.Qt.TextElideMode.ElideMiddle, NODE_W - 10)
        painter.drawText(QtCore.QRectF(5, 3, NODE_W - 10, 16), QtCore.Qt.AlignmentFlag.AlignLeft, title)
        font.setBold(False)
        font.setPointSizeF(7.5)
        painter.setFont(font)
        painter.setPen(soft)
        small = QtGui.QFontMetrics(font)
        painter.drawText(
            QtCore.QRectF(5, 18, NODE_W - 10, 13),
            QtCore.Qt.AlignmentFlag.AlignLeft,
            small.elidedText(self.subtitle, QtCore.Qt.TextElideMode.ElideRight, NODE_W - 10),
        )
        painter.setPen(ink)
        painter.drawText(
            QtCore.QRectF(5, 30, NODE_W - 10, 13),
            QtCore.Qt.AlignmentFlag.AlignLeft,
            small.elidedText(self.value_text, QtCore.Qt.TextElideMode.ElideRight, NODE_W - 10),
        )

    def mousePressEvent(self, event) -> None:
        if event.button() == QtCore.Qt.MouseButton.LeftButton:
            self._on_click(self)
        event.accept()


class BlockFrame(QtWidgets.QGraphicsRectItem):
    """The frame around an expanded block; its header collapses it."""

    def __init__(self, block: Block, rect: QtCore.QRectF, on_click: Callable[[Block], None]) -> None:
        super().__init__(rect)
        self.block = block
        self._on_click = on_click
        self.setPen(QtGui.QPen(QtGui.QColor(theme.NODE_BORDER), 1, QtCore.Qt.PenStyle.DashLine))
        self.setBrush(theme.color(theme.BLOCK_FILL, 0.55))
        self.setZValue(-2)
        header = QtWidgets.QGraphicsSimpleTextItem(f"▾ {block.label}  ({len(block.members)} layers)", self)
        header.setBrush(QtGui.QColor(theme.MUTED))
        header.setPos(rect.x() + 6, rect.y() + 4)
        self.setCursor(QtCore.Qt.CursorShape.PointingHandCursor)
        self.setToolTip(f"{block.label}: click the frame to collapse it into one node")

    def mousePressEvent(self, event) -> None:
        if event.button() == QtCore.Qt.MouseButton.LeftButton:
            self._on_click(self.block)
        event.accept()


# a swatch's cell beside its label's text: the 12 px swatch, 4 px to the label, 8 px of label padding, 4 px after
_SWATCH_CELL = 28


def _swatches_width(metrics: QtGui.QFontMetrics, labels: list[str]) -> int:
    """The width the swatches take drawn with these labels (see Legend.paintEvent)."""
    return sum(metrics.horizontalAdvance(label) + _SWATCH_CELL for label in labels)


class Legend(QtWidgets.QWidget):
    """A colour bar with the range of the metric shown, and the 'no data' swatch."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumWidth(160)  # fits a compact layout's side dock; the bar shrinks, the labels stay
        self.setMaximumWidth(560)  # a bar across a full-width dock is read end to end for nothing
        self.setFixedHeight(22)
        self.colours: tuple[str, ...] = theme.SCALES["bad"]
        self.lo_text = self.hi_text = ""
        self.swatches: list[tuple[str, str]] = [(theme.NO_DATA, "no data")]

    def set_range(self, colours: tuple[str, ...], lo: str, hi: str, swatches: list[tuple[str, str]]) -> None:
        """The colour bar from `lo` to `hi`, then a swatch (colour, label) for each kind of layer without a value."""
        self.colours, self.lo_text, self.hi_text, self.swatches = colours, lo, hi, swatches
        self.setToolTip(f"{lo} to {hi}" + "".join(f"; {label}" for _, label in swatches))
        self.update()

    def shown_labels(self, metrics: QtGui.QFontMetrics, room: float) -> list[str]:
        """The swatches' labels as drawn in `room` pixels: whole where they fit, else each cut to an even share
        with an ellipsis (the tooltip has them whole), so none is cut off mid-letter at the widget's edge."""
        labels = [label for _, label in self.swatches]
        if _swatches_width(metrics, labels) <= room:
            return labels
        share = max(room / max(len(labels), 1) - _SWATCH_CELL, 0)
        return [metrics.elidedText(label, QtCore.Qt.TextElideMode.ElideRight, int(share)) for label in labels]

    def paintEvent(self, _event) -> None:
        painter = QtGui.QPainter(self)
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        metrics = painter.fontMetrics()
        lo_w = metrics.horizontalAdvance(self.lo_text) + 6
        hi_w = metrics.horizontalAdvance(self.hi_text) + 6
        none_w = _swatches_width(metrics, [label for _, label in self.swatches])
        bar = QtCore.QRectF(lo_w, 5, max(self.width() - lo_w - hi_w - none_w - 8, 20), 12)
        labels = self.shown_labels(metrics, self.width() - (bar.right() + hi_w + 8))
        gradient = QtGui.QLinearGradient(bar.topLeft(), bar.topRight())
        for i, c in enumerate(self.colours):
            gradient.setColorAt(i / max(len(self.colours) - 1, 1), QtGui.QColor(c))
        painter.setPen(QtGui.QColor(theme.FOREGROUND))
        painter.drawText(
            QtCore.QRectF(0, 0, lo_w - 4, 22),
            QtCore.Qt.AlignmentFlag.AlignVCenter | QtCore.Qt.AlignmentFlag.AlignRight,
            self.lo_text,
        )
        painter.drawText(
            QtCore.QRectF(bar.right() + 4, 0, hi_w, 22), QtCore.Qt.AlignmentFlag.AlignVCenter, self.hi_text
        )
        painter.setPen(QtCore.Qt.PenStyle.NoPen)
        painter.setBrush(gradient)
        painter.drawRoundedRect(bar, 3, 3)
        x = bar.right() + hi_w + 8
        for (colour, _), label in zip(self.swatches, labels):
            swatch = QtCore.QRectF(x, 5, 12, 12)
            painter.setBrush(QtGui.QColor(colour))
            painter.setPen(QtGui.QColor(theme.NODE_BORDER))
            painter.drawRoundedRect(swatch, 2, 2)
            painter.setPen(QtGui.QColor(theme.MUTED))
            width = metrics.horizontalAdvance(label) + 8
            painter.drawText(
                QtCore.QRectF(swatch.right() + 4, 0, width, 22), QtCore.Qt.AlignmentFlag.AlignVCenter, label
            )
            x = swatch.right() + 4 + width + 4
