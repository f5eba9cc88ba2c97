"""Following a run file another process is still writing: a 200 ms poll on the GUI thread for new steps.

Each poll is one cheap query (steps after the last one seen) and one lock
probe (is the writer still there); nothing is read for a poll that finds no
new step. New steps are announced; the viewer decides what to redraw.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal

from bpviz.engine.runs.errors import RunFileError
from bpviz.engine.runs.playback import Playback

POLL_MS = 200


class RunFollower(QObject):
    """Polls `playback`'s file while its writer is alive; says when steps arrive and when the writer goes."""

    grew = Signal(object)  # list[int]: the new step numbers
    state_changed = Signal(str)  # "live" | "finished" | "writer stopped"
    failed = Signal(object)  # RunFileError: the file went bad under us

    def __init__(self, playback: Playback, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.playback = playback
        self.state = playback.run.status
        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.poll)
        if self.state == "live":
            self.timer.start()

    def poll(self) -> None:
        """Take in new steps; once the writer has gone, take in its last ones and stop polling."""
        try:
            state = self.playback.run.status
            new = self.playback.refresh()
        except RunFileError as error:
            self.timer.stop()
            self.failed.emit(error)
            return
        if new:
            self.grew.emit(new)
        if state != self.state:
            self.state = state
            if state != "live":
                self.timer.stop()
            self.state_changed.emit(state)

    def stop(self) -> None:
        self.timer.stop()
