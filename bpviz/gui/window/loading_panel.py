"""The strip that says a file is loading, which one and for how long, with Stop beside it.

A `build()` can take a while, or never return (an endless loop, a lock it
waits on). A status-bar message is cleared by the next menu hover, so the
load would go on unseen, with every Train action disabled. This strip stays
until the load ends, counts the seconds, and carries the window's Stop action
(the same QAction as the menu's and its shortcut), which kills the process
that loads.
"""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QProgressBar, QToolButton

from bpviz.gui import theme

TICK_MS = 1000


class LoadingPanel(QFrame):
    """Hidden until `start`; `finish` hides it again."""

    def __init__(self, stop: QAction, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("loadingPanel")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet(theme.LOADING_PANEL_STYLE)
        self.name = ""
        self._started = 0.0
        self.label = QLabel()
        self.label.setStyleSheet("font-weight: bold;")
        keys = stop.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        self.hint = QLabel(f"its code runs until build() returns; if it hangs, Stop ({keys}) kills its process")
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)  # no end known: it moves, so a load that takes long still looks alive
        self.busy.setFixedWidth(120)
        self.busy.setTextVisible(False)
        self.stop_button = QToolButton()
        self.stop_button.setDefaultAction(stop)  # enabled, and labelled, as the action is
        self.stop_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self._timer = QTimer(self)
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(self._tick)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.addWidget(self.label)
        layout.addWidget(self.hint, 1)
        layout.addWidget(self.busy)
        layout.addWidget(self.stop_button)
        self.hide()

    def start(self, name: str) -> None:
        """`name` began loading now."""
        self.name = name
        self._started = time.monotonic()
        self._tick()
        self._timer.start()
        self.show()

    def finish(self) -> None:
        self._timer.stop()
        self.hide()

    def seconds(self) -> int:
        """Whole seconds since the load began."""
        return int(time.monotonic() - self._started)

    def _tick(self) -> None:
        self.label.setText(f"Loading {self.name}… {self.seconds()} s")
