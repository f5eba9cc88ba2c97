"""A grid of controls that takes fewer columns when it is narrow, instead of running off the edge of its dock.

A fixed four-column grid of remedy buttons wanted some 560 px; in the workbench
dock of a 1280x800 screen (about 380 px) half of its buttons lay past the edge,
behind a scroll bar. Here the cells are given in reading order, each with the
columns it spans, and are laid out row after row in the most columns whose
natural width fits; the minimum width asked of the parent is the narrowest
arrangement's, so a narrow dock never forces the wide one.
"""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets


class ReflowGrid(QtWidgets.QWidget):
    """`cells`: (widget, columns spanned) in reading order; `choices`: the column counts tried, most first."""

    def __init__(
        self,
        cells: list[tuple[QtWidgets.QWidget, int]],
        choices: tuple[int, ...] = (4, 2),
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._cells = cells
        self._choices = choices
        self.grid = QtWidgets.QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setVerticalSpacing(3)
        self.columns = 0
        self._arrange(choices[0])

    def _rows(self, columns: int) -> list[list[tuple[QtWidgets.QWidget, int]]]:
        rows: list[list[tuple[QtWidgets.QWidget, int]]] = [[]]
        used = 0
        for widget, span in self._cells:
            span = min(span, columns)
            if used + span > columns:
                rows.append([])
                used = 0
            rows[-1].append((widget, span))
            used += span
        return rows

    def natural_width(self, columns: int) -> int:
        """The width the cells want laid out in `columns`: the widest row of size hints, with the spacing."""
        spacing = max(0, self.grid.horizontalSpacing())
        return max(
            sum(widget.sizeHint().width() for widget, _ in row) + spacing * (len(row) - 1)
            for row in self._rows(columns)
        )

    def _arrange(self, columns: int) -> None:
        if columns == self.columns:
            return
        self.columns = columns
        for widget, _ in self._cells:
            self.grid.removeWidget(widget)
        for r, row in enumerate(self._rows(columns)):
            c = 0
            for widget, span in row:
                self.grid.addWidget(widget, r, c, 1, span)
                c += span
        for c in range(max(self._choices)):
            self.grid.setColumnStretch(c, 1 if c < columns else 0)
        self.updateGeometry()

    def sizeHint(self) -> QtCore.QSize:  # noqa: N802 - Qt's name
        """As wide as the most columns want, whatever is laid out now: a layout that gives the grid its hint
        (the workbench's remedies, beside the table) then offers the room to go back to more columns once it
        has it, where the hint of the fewer columns it had taken in a narrow moment kept it at those for good."""
        hint = super().sizeHint()
        return QtCore.QSize(max(hint.width(), self.natural_width(self._choices[0])), hint.height())

    def minimumSizeHint(self) -> QtCore.QSize:
        """As narrow as the fewest columns allow, whatever is laid out now."""
        hint = super().minimumSizeHint()
        fewest = self._choices[-1]
        narrowest = max(widget.minimumSizeHint().width() for widget, _ in self._cells) * fewest
        return QtCore.QSize(min(hint.width(), narrowest), hint.height())

    def resizeEvent(self, event) -> None:
        width = event.size().width()
        fits = next((n for n in self._choices if self.natural_width(n) <= width), self._choices[-1])
        self._arrange(fits)
        super().resizeEvent(event)
