"""The window viewing a recording: the run file, the step chosen on the timeline, and the RunView drawn from both.

The window draws whatever RunView it is given; for a recording this object
builds it from the file (engine/runs/playback.py) at the timeline's step, and
again when the follower brings new steps and the timeline follows the end.
It keeps nothing of the run itself but that view.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from bpviz.engine.runs.branches import MAIN
from bpviz.engine.runs.compare import compare_runs
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
        self.other: Playback | None = None  # File > Compare With...: the second run
        self.comparison: dict | None = None  # compare_runs(this, other)
        self.other_view: RunView | None = None  # the second run at the step shown
        self.view: RunView = self._view_at(None)
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

    @property
    def divergence(self) -> dict | None:
        """Where the compared runs first part (compare.py's divergence), None when they do not or none is compared."""
        return self.comparison["divergence"] if self.comparison is not None else None

    def compare_with(self, path: str | Path, branch: int | None = None) -> dict:
        """Overlay the run file `path` (RunFileError when unreadable); returns the comparison.

        `branch` is the branch of `path` overlaid: by default its latest when `path` is this recording's own file
        (a rewound run compared with itself shows its branches side by side), else the run as first trained.
        """
        if branch is None:
            own = Path(path).resolve() == self.path.resolve()
            branch = self.playback.run.branches()[-1].id if own else MAIN
        other = Playback(open_run(path, branch))
        self.stop_comparing()
        self.other = other
        self.comparison = compare_runs(self.playback.run, other.run)
        self._on_step_chosen(-1 if self.timeline.live else self.timeline.step)
        return self.comparison

    def stop_comparing(self) -> None:
        if self.other is not None:
            self.other.run.close()
        self.other = self.comparison = self.other_view = None

    def close(self) -> None:
        """Stop following and let go of the file (and of the compared one)."""
        self.follower.stop()
        self.timeline.step_chosen.disconnect(self._on_step_chosen)
        self.stop_comparing()
        self.playback.run.close()

    def _view_at(self, step: int | None) -> RunView:
        """This run at `step`, with the divergence marked on its time axes; the compared run at the same step."""
        view = self.playback.view_at(step)
        latest = view.history.latest
        if self.other is not None and latest is not None:
            self.other_view = self.other.view_at(latest.step)
            div = self.divergence
            if div is not None and div["step"] <= latest.step:
                what = f"{div['statistic']} of layer {div['layer']}" if div["layer"] else div["statistic"]
                view.history.marks.append((div["step"], f"the runs diverge here ({what})"))
        return view

    def _on_step_chosen(self, step: int) -> None:
        self.view = self._view_at(None if step < 0 else step)
        self.changed.emit()

    def _on_grew(self, new: list[int]) -> None:
        self.timeline.set_steps(self.playback.steps)
        if not self.timeline.live:
            return  # the user looks at an earlier step: the slider grows, the view stays
        if self.other is None and self.view.history.latest is not None:
            self.playback.extend(self.view, new)
        else:
            self.view = self._view_at(None)
        self.changed.emit()
