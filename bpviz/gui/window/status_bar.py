"""The status bar: its messages, cut with "…" where they would run under the permanent part, and that part:
step, loss, steps per second, train/eval mode, and Run N's progress."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from PySide6.QtCore import QEvent, QRect, Qt, QTimer
from PySide6.QtGui import QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QStatusBar,
    QToolTip,
    QWidget,
)

from bpviz.engine.record.records import StepRecord
from bpviz.gui.format import number

_RATE_REFRESH_MS = 500
_STALLED_S = 3.0  # no step for this long while running: the rate says so instead


class MessageBar(QStatusBar):
    """A QStatusBar whose message ends in "…" where the permanent fields begin, the whole of it in the tooltip.

    Qt draws a message on one line and cuts it at the first permanent field, mid-word: at 1280x800 a
    recording's path ran under "Step 12". `currentMessage()` stays the whole text.
    """

    MARGIN = 6  # px, Qt's own inset of the message from the bar's left edge

    def shown_message(self) -> str:
        """The message as drawn: elided to the room left of the permanent fields."""
        return self.fontMetrics().elidedText(self.currentMessage(), Qt.TextElideMode.ElideRight, self._room().width())

    def paintEvent(self, event: QPaintEvent) -> None:
        message = self.currentMessage()
        if not message:
            super().paintEvent(event)
            return
        painter = QPainter(self)
        painter.setPen(self.palette().color(QPalette.ColorRole.WindowText))
        flags = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter | Qt.TextFlag.TextSingleLine
        painter.drawText(self._room(), flags, self.shown_message())

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip and self.shown_message() != self.currentMessage():
            if self._room().contains(event.pos()):
                QToolTip.showText(event.globalPos(), self.currentMessage(), self)
                return True
        return super().event(event)

    def _room(self) -> QRect:
        """Where the message goes: from the left margin to the first visible permanent field."""
        right = self.width() - 2 * self.MARGIN
        lefts = [w.x() for w in self.children() if isinstance(w, QWidget) and w.isVisible() and w.x() > self.MARGIN]
        if lefts:
            right = min(right, min(lefts) - 2)
        return QRect(self.MARGIN, 0, max(0, right - self.MARGIN), self.height())


class RunProgress(QWidget):
    """Progress of a Run N, with Cancel; lives in the status bar and hides when no run counts steps."""

    def __init__(self, cancel: Callable[[], None], parent=None) -> None:
        super().__init__(parent)
        self.bar = QProgressBar()
        self.bar.setFixedWidth(180)
        self.bar.setTextVisible(True)
        self.bar.setFormat("%v / %m")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(lambda: cancel())
        self.cancel_button.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)  # not bar-wide
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.bar)
        layout.addWidget(self.cancel_button)
        self.hide()

    def start(self, total: int) -> None:
        self.bar.setRange(0, total)
        self.bar.setValue(0)
        self.setVisible(total > 0)

    def advance(self, done: int) -> None:
        self.bar.setValue(done)

    def finish(self) -> None:
        self.hide()


class StatusBar:
    """Fills `bar`'s permanent widgets and keeps them up to date; `running` says whether steps/s means anything."""

    def __init__(self, bar: QStatusBar, running: Callable[[], bool], cancel: Callable[[], None]) -> None:
        self._running = running
        self._arrivals: deque[float] = deque(maxlen=256)
        self.labels = {key: QLabel() for key in ("step", "loss", "rate", "mode")}
        for key, label in self.labels.items():
            label.setMinimumWidth(90 if key != "loss" else 120)
            label.setStyleSheet("padding: 0 6px;")
            bar.addPermanentWidget(label)
        self.progress = RunProgress(cancel)
        bar.addPermanentWidget(self.progress)
        self.run_state = QLabel()
        self.run_state.setObjectName("runState")
        self.run_state.setStyleSheet("padding: 0 6px; font-weight: bold;")
        bar.addPermanentWidget(self.run_state)
        self.show_run_state(None)
        self.show(None)
        # steps/s is drawn with each step; without this, a step that hangs left the last rate up for as long
        self._rate_timer = QTimer(bar)
        self._rate_timer.timeout.connect(self.refresh_rate)
        self._rate_timer.start(_RATE_REFRESH_MS)

    def show_run_state(self, state: str | None) -> None:
        """A recording's state: "● live" while its writer records, "writer stopped" or "finished"; hidden otherwise."""
        texts = {
            "live": ("● live", "another process is recording this run: new steps appear as they are written"),
            "writer stopped": (
                "writer stopped (run not finished)",
                "the process recording this run ended before finishing it: a crash or a kill",
            ),
            "finished": ("writer stopped (run finished)", "the run was recorded to its end"),
        }
        text, tip = texts.get(state, ("", ""))
        self.run_state.setText(text)
        self.run_state.setToolTip(tip)
        self.run_state.setVisible(bool(text))

    def arrived(self, count: int = 1) -> None:
        """`count` steps arrived now (for steps/s; a followed run's poll may find several)."""
        self._arrivals.extend([time.perf_counter()] * count)

    def forget_arrivals(self) -> None:
        """A run ended or a new model: steps/s starts afresh."""
        self._arrivals.clear()

    def show(self, record: StepRecord | None) -> None:
        """The labels for `record` (None: nothing recorded yet)."""
        labels = self.labels
        # Steps are numbered from 0 everywhere (plots, findings); the tooltip gives the count.
        labels["step"].setText(f"Step {record.step}" if record is not None else "Step –")
        labels["step"].setToolTip(f"{record.step + 1} training steps done" if record is not None else "No step yet")
        loss = record.loss if record is not None else None
        labels["loss"].setText(f"Loss {number(loss)}")
        self.refresh_rate()
        mode = None
        if record is not None and record.forwards:
            mode = "train" if record.forwards[-1].model_training else "eval"
        labels["mode"].setText(f"Mode: {mode or '–'}")
        labels["mode"].setToolTip("Whether the model was in train() or eval() mode during the last training forward")

    def refresh_rate(self) -> None:
        """steps/s while running (or while a followed run's writer records); once no step has arrived for a while,
        for how long, since a rate would be stale."""
        label = self.labels["rate"]
        if not self._running():
            label.setText("– steps/s")
            return
        since = time.perf_counter() - self._arrivals[-1] if self._arrivals else 0.0
        if since >= _STALLED_S:
            label.setText(f"no step for {since:.0f} s")
        else:
            label.setText(f"{self.steps_per_second():.1f} steps/s")

    def steps_per_second(self) -> float:
        """Steps per second over the last couple of seconds of arrivals."""
        now = time.perf_counter()
        recent = [t for t in self._arrivals if now - t < 2.0]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-9)
