"""The window opening the run files of a torch.distributed job as one set: a rank at a time, and all of them.

`bpviz run.rank0.bpviz` (any rank's file, or the folder holding them) opens
the set: the window views the chosen rank's run as it views any recording,
and a dock holds the rank selector and the combined view at the step shown.
Choosing another rank opens that rank's file in the same way; opening
anything outside the set closes the set.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QDockWidget, QMainWindow

from bpviz.engine.distributed.run_set import RankSet, rank_files
from bpviz.engine.runs.errors import RunFileError
from bpviz.gui.panels.rank_panel import RankPanel


class RankSets(QObject):
    """The set of rank files open in `window`, if any; its dock appears with the set and goes with it."""

    def __init__(self, window: QMainWindow) -> None:
        """`window`: the main window, with open_recording(path), timeline, recording and error_panel.

        It is this object's Qt parent and is reached through parent(), never kept in an attribute: a
        Python reference cycle with the window would leave it to the cyclic collector, which may run on
        any thread (the client's reader thread among them) and free Qt widgets there.
        """
        super().__init__(window)
        self.set: RankSet | None = None
        self.shown_rank: int | None = None
        self.panel = RankPanel()
        self.panel.rank_chosen.connect(self.show_rank)
        self.dock = QDockWidget("Ranks", window)
        self.dock.setObjectName("dock_ranks")
        self.dock.setWidget(self.panel)
        window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.dock)
        self.dock.hide()

    def window(self) -> QMainWindow:
        """The main window: this object's Qt parent."""
        return self.parent()

    @staticmethod
    def files_of(path: str | Path) -> dict[int, Path]:
        """The rank files `path` names (a rank's file of a set, or a folder holding one), {} otherwise."""
        return rank_files(path)

    def open(self, files: dict[int, Path], path: str | Path) -> bool:
        """Open the set and show the rank of `path` (the lowest rank for a folder); False when unreadable."""
        chosen = next((rank for rank, file in files.items() if Path(path) == file), min(files))
        try:
            opened = RankSet(files)
        except RunFileError as error:  # which file, and what to do; the window goes on as it was
            self.window().error_panel.show_error(error)
            return False
        self.close()
        self.set = opened
        self.panel.set_ranks(opened.ranks, chosen)
        if not self.show_rank(chosen):
            self.close()
            return False
        self.dock.show()
        self.dock.raise_()
        return True

    def show_rank(self, rank: int) -> bool:
        """View rank `rank`'s run in the window, the set staying open, at the step shown (unless it follows)."""
        if self.set is None:
            return False
        timeline = self.window().timeline
        step = None if self.window().recording is None or timeline.live else timeline.step
        self.shown_rank = rank
        opened = self.window().open_recording(self.set.files[rank])
        if opened and step is not None:
            timeline.go_to(step)
        return opened

    def keeps(self, path: str | Path) -> bool:
        """Whether opening `path` stays within the open set (another rank's file of it)."""
        return self.set is not None and Path(path) in self.set.files.values()

    def on_redrawn(self, step: int) -> None:
        """The window drew `step`: draw every rank at that step."""
        if self.set is None:
            return
        self.set.refresh()
        layers, values = self.set.side_by_side(step)
        self.panel.show_step(step, layers, values, self.set.divergences(step))

    def close(self) -> None:
        if self.set is not None:
            self.set.close()
        self.set = self.shown_rank = None
        self.dock.hide()
