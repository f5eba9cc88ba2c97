"""Vertical marks on a step axis where a remedy or a hyperparameter change took effect.

One helper for every plot over steps, so "before" and "after" read the same
everywhere. Lines are made only when the list of interventions grows (or is
replaced), never on a plain redraw. A label reads away from the nearer edge
of the view: a remedy just applied sits at the newest step, the right edge,
and its label was cut to "rel" there.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6 import QtCore

from bpviz.engine.record.history import History, is_undo
from bpviz.gui import theme

LABEL_ROW = 0.12  # the height of a label's row, as a share of the plot's
LABEL_PX = 18  # ... and at least this many pixels: in a low plot a twelfth overlapped one label with the next


class InterventionMarks:
    """Keeps one dashed vertical line per `history.interventions` and `history.marks` entry on `plot`, labelled
    on hover."""

    def __init__(self, plot: pg.PlotItem, labels: bool = False) -> None:
        self.plot = plot
        self.labels = labels  # draw the label text next to the line (for roomy plots)
        self.lines: list[pg.InfiniteLine] = []
        self._seen: list[tuple[int, str]] = []
        self._labels: list[tuple[pg.InfLineLabel, int]] = []  # each with its row
        if labels:
            plot.getViewBox().sigXRangeChanged.connect(self._place_labels)
            plot.getViewBox().sigResized.connect(self._place_labels)

    def update(self, history: History | None) -> bool:
        """Match the lines to `history.interventions` and `history.marks`; True when they changed."""
        marks = [*history.interventions, *history.marks] if history is not None else []
        if marks == self._seen:
            return False
        if marks[: len(self._seen)] != self._seen:
            self.clear()
        span = history.span() if history is not None else None
        first = span[0] if span is not None else 0
        for step, label in marks[len(self._seen) :]:
            self.lines.append(self._line(step, label, first))
        self._seen = marks
        return True

    def clear(self) -> None:
        self._labels = []  # first: removing a line can move the view, which places the labels left
        for line in self.lines:
            self.plot.removeItem(line)
        self.lines = []
        self._seen = []

    def _place_labels(self) -> None:
        """Each label on the side of its line with more of the view (right of it in the left half, else left),
        and a row below the one before, three rows round (a remedy and its undo a step apart drew one label over
        the other), each row at least LABEL_PX high."""
        box = self.plot.getViewBox()
        lo, hi = box.viewRange()[0]
        middle = (lo + hi) / 2
        row_height = max(LABEL_ROW, LABEL_PX / box.height()) if box.height() > 0 else LABEL_ROW
        for label, row in self._labels:
            side = 0.0 if label.line.value() < middle else 1.0
            position = max(0.0, 0.9 - row_height * row)
            if label.anchors[0][0] != side or label.orthoPos != position:
                label.anchors = [(side, 0.5), (side, 0.5)]
                label.setPosition(position)

    def _line(self, step: int, label: str, first: int) -> pg.InfiniteLine:
        undo = is_undo(label)
        pen = theme.pen(theme.UNDONE if undo else theme.INTERVENTION, 1.4)
        pen.setStyle(QtCore.Qt.PenStyle.DashLine)
        # at step - 0.5: between the last step before the change and the first one after it; on the first step
        # when nothing comes before it (two runs that diverge from step 0 drew it left of the view, its label cut)
        line = pg.InfiniteLine(pos=max(step - 0.5, first), angle=90, pen=pen, movable=False)
        line.setToolTip(f"step {step}: {label}")
        line.setZValue(5)
        if self.labels:
            label = pg.InfLineLabel(
                line,
                text=label,
                position=0.9 - LABEL_ROW * (len(self.lines) % 3),  # placed by _place_labels
                anchors=[(0, 0.5), (0, 0.5)],
                color=theme.UNDONE if undo else theme.INTERVENTION,
                fill=theme.brush(theme.PANEL, 0.8),  # readable over the curves it crosses
            )
            self._labels.append((label, len(self.lines) % 3))
        self.plot.addItem(line, ignoreBounds=True)
        if self.labels:
            self._place_labels()
        return line
