"""A plot title that elides to the width its plot gets, instead of widening the plot past its pane.

pyqtgraph's title label asks for its full text width as the plot's minimum width;
in a narrow pane the plot is then laid out wider than the widget and its right
part (the newest steps) is cut off. This title asks for almost nothing, shortens
its text with "…" when narrow, and keeps the whole text in its tooltip.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6 import QtCore, QtGui

MIN_TITLE_WIDTH = 40.0


class FittedTitle(pg.LabelItem):
    """A LabelItem whose minimum width is small and whose text elides to the width it is given."""

    def __init__(self) -> None:
        self._full = ""
        super().__init__(" ")

    def setText(self, text: str, **args) -> None:  # noqa: N802 - pyqtgraph's name
        self._full = text
        self.setToolTip(text)
        super().setText(text, **args)

    def resizeEvent(self, ev) -> None:  # noqa: N802 - Qt's name
        width = self.rect().width()
        if width > 0 and self._full:
            font = QtGui.QFont(self.item.font())
            size = str(self.opts.get("size", ""))
            if size.endswith("pt"):
                font.setPointSizeF(float(size[:-2]))
            shown = QtGui.QFontMetricsF(font).elidedText(self._full, QtCore.Qt.TextElideMode.ElideRight, width - 8)
            if shown != self.text:
                self.text = shown
                color = pg.mkColor(self.opts["color"] or pg.getConfigOption("foreground"))
                self.item.setHtml(f"<span style='color: {color.name()}; font-size: {size or '9pt'}'>{shown}</span>")
        super().resizeEvent(ev)

    def updateMin(self) -> None:  # noqa: N802 - pyqtgraph's name
        super().updateMin()
        height = self.itemRect().height()
        self.setMinimumWidth(MIN_TITLE_WIDTH)
        self._sizeHint[QtCore.Qt.SizeHint.MinimumSize] = (MIN_TITLE_WIDTH, height)
        self._sizeHint[QtCore.Qt.SizeHint.PreferredSize] = (MIN_TITLE_WIDTH, height)
        self.updateGeometry()


def install(plot: pg.PlotItem) -> FittedTitle:
    """Replace `plot`'s title label by a FittedTitle in the same layout cell (row 0, column 1)."""
    title = FittedTitle()
    old = plot.titleLabel
    plot.layout.removeItem(old)
    if old.scene() is not None:
        old.scene().removeItem(old)
    plot.titleLabel = title
    plot.layout.addItem(title, 0, 1)
    title.setParentItem(plot)
    return title
