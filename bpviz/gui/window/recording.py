"""The window viewing a recording: the run file, the step chosen on the timeline, and the RunView drawn from both.

The window draws whatever RunView it is given; for a recording this object
builds it from the file (engine/runs/playback.py) at the timeline's step, and
again when the follower brings new steps and the timeline follows the end.
It keeps nothing of the run itself but that view.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from bpviz.engine.runs.playback import Playback
from bpviz.engine.runs.reader import open_run
from bpviz.engine.session.events import RunView
from bpviz.gui.window.run_follower import RunFollower
from bpviz.gui.window.timeline import Timeline


class Recording(QObject):
    """One open run file; `changed` when its view is a new one to draw."""

    changed = Signal()
    state_changed = Signal(str)  # the follower's: "live" | "finished" | "writer stopped"
    failed = Signal(object)  # RunFileError

    def __init__(self, path: str | Path, timeline: Timeline, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.path = Path(path)
        self.playback = Playback(open_run(self.path))  # RunFileError: the caller shows it, the window goes on
        self.timeline = timeline
        self.view: RunView = self.playback.view_at(None)
        self.follower = RunFollower(self.playback, self)
        self.follower.grew.connect(self._on_grew)
        self.follower.state_changed.connect(self.state_changed)
        self.follower.failed.connect(self.failed)
        timeline.step_chosen.connect(self._on_step_chosen)
        timeline.live = True
        timeline.set_steps(self.playback.steps)

    @property
    def state(self) -> str:
        return self.follower.state

    def close(self) -> None:
        """Stop following and let go of the file."""
        self.follower.stop()
        self.timeline.step_chosen.disconnect(self._on_step_chosen)
        self.playback.run.close()

    def _on_step_chosen(self, step: int) -> None:
        self.view = self.playback.view_at(None if step < 0 else step)
        self.changed.emit()

    def _on_grew(self, _new: list[int]) -> None:
        self.timeline.set_steps(self.playback.steps)
        if self.timeline.live:
            self.view = self.playback.view_at(None)
            self.changed.emit()
