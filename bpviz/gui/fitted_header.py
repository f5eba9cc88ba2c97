"""A view's one-line header that drops whole parts when narrow, never cutting a number into another number.

A QLabel too narrow for its rich text clips it at the right edge, mid-character:
"fc1 0.000704" read "fc1 0.0" and "5.9e-05" read "5". This label is given its
text as parts (a label with its value is one part) and shows the leading parts
that fit whole, then "…"; the whole text stays in its tooltip.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6 import QtCore, QtGui, QtWidgets

ELLIDED = "&nbsp;…"  # stands for the parts left out


class FittedHeader(QtWidgets.QLabel):
    """One line of rich text in parts; as many leading parts as fit are shown, the rest as "…"."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        # A long layer name must not widen the view and squeeze the layer table: the header takes the width it gets.
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
        self.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self._parts: list[str] = []

    def set_parts(self, parts: Sequence[str]) -> None:
        """Show `parts` (rich text each, in reading order), as many as fit whole."""
        self._parts = [part for part in parts if part]
        self.setToolTip(QtGui.QTextDocumentFragment.fromHtml(self.full_text()).toPlainText().strip())
        self._fit()

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        """Text in one part: shown whole or not at all."""
        self.set_parts([text])

    def full_text(self) -> str:
        """Every part, whether it fits or not."""
        return "".join(self._parts)

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        room = self.contentsRect().width() - 2 * self.margin()
        shown = self._parts
        if self.testAttribute(QtCore.Qt.WidgetAttribute.WA_WState_Visible) and room > 0:
            count = len(shown)
            while count and self._width("".join(shown[:count]) + (ELLIDED if count < len(shown) else "")) > room:
                count -= 1
            if count < len(shown):
                shown = [*shown[:count], ELLIDED]
        super().setText("".join(shown))

    def _width(self, html: str) -> float:
        self.ensurePolished()
        document = QtGui.QTextDocument()
        document.setDocumentMargin(0)
        document.setDefaultFont(self.font())
        document.setHtml(html)
        return document.idealWidth()
