"""Screenshot mode: open a file, train N steps in the window's own experiment process, save a PNG, exit.

It drives the window exactly as a person would (the same experiment process, the same
redraw clock), and waits on signals, never on sleeps: loaded → run N →
run finished → a redraw showing the last step → select the worst layer →
grab the window.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QApplication

from bpviz.engine.user_error import UserCodeError
from bpviz.gui.window.main_window import MainWindow

EXIT_OK = 0
EXIT_USER_CODE = 2  # the same code `bpviz check` uses for a failure in the user's file
TIMEOUT_MS = 10 * 60 * 1000


class ScriptedRun(QObject):
    """Runs `steps` steps once the window has loaded its file, then saves `screenshot` and quits with a code."""

    def __init__(self, window: MainWindow, steps: int, screenshot: Path | None) -> None:
        super().__init__(window)
        self.window = window
        self.steps = max(int(steps or 0), 0)
        self.screenshot = Path(screenshot) if screenshot else None
        self.exit_code = EXIT_OK
        self._target_step: int | None = None
        self._finished = False
        window.loaded.connect(self._on_loaded)
        window.load_failed.connect(self._on_failure)
        window.failed.connect(self._on_failure)
        window.run_finished.connect(self._on_run_finished)
        window.redrawn.connect(self._on_redrawn)
        # From start-up, not from the load: a load that never answers must end the run too.
        self._watchdog = QTimer(self)
        self._watchdog.setSingleShot(True)
        self._watchdog.timeout.connect(self._on_timeout)
        self._watchdog.start(TIMEOUT_MS)

    def start_without_file(self) -> None:
        """Nothing to load: shoot the start page once it is laid out."""
        QTimer.singleShot(0, self._finish)

    def _on_loaded(self, _request) -> None:
        if self._finished:
            return
        if self.steps:
            self.window.run_n(self.steps)
        else:
            QTimer.singleShot(0, self._finish)

    def _on_failure(self, error: UserCodeError) -> None:
        print(error.summary(), file=sys.stderr)
        self.exit_code = EXIT_USER_CODE
        if self.window.controller.has_model and self.window.history.latest is not None:
            return  # a step failed mid-run: run_finished follows and the shot shows what was recorded and the error
        QTimer.singleShot(0, self._finish)

    def _on_run_finished(self, _how: str) -> None:
        latest = self.window.history.latest
        if latest is None:
            QTimer.singleShot(0, self._finish)
            return
        self._target_step = latest.step
        if self.window.shown_step == latest.step:
            QTimer.singleShot(0, self._finish)

    def _on_redrawn(self, step: int) -> None:
        if self._target_step is not None and step >= self._target_step and not self._finished:
            QTimer.singleShot(0, self._finish)

    def _on_timeout(self) -> None:
        print("bpviz: screenshot run timed out", file=sys.stderr)
        self.exit_code = 1
        self._finish()

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        self._watchdog.stop()
        window = self.window
        window.page.select_worst()
        window.redraw(force=True)
        QApplication.processEvents()
        if self.screenshot is not None:
            self.screenshot.parent.mkdir(parents=True, exist_ok=True)
            if not window.grab().save(str(self.screenshot)):
                print(f"bpviz: could not write {self.screenshot}", file=sys.stderr)
                self.exit_code = 1
            else:
                print(f"bpviz: saved {self.screenshot}", file=sys.stderr)
        window.close()
        QApplication.instance().exit(self.exit_code)
