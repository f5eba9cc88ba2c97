"""Starting the window: the QApplication, its look, and what the command line asked for."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QRect, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from bpviz.gui import theme
from bpviz.gui.desktop_entry import ICON
from bpviz.gui.qt_platform import cannot_open_window
from bpviz.gui.window.dialogs import Dialogs
from bpviz.gui.window.settings import Settings, ini_settings

SCREENSHOT_SCREEN = (1600, 1000)  # the screen a screenshot is taken on unless --screen says otherwise
EXIT_COULD_NOT_RUN = 2  # as `bpviz check`: the window could not start or the file could not be opened


def app_icon() -> QIcon:
    """The icon shipped inside the package (so an installed bpviz has it too), or an empty icon when missing."""
    return QIcon(str(ICON)) if ICON.exists() else QIcon()


def make_application(argv: list[str] | None = None) -> QApplication:
    """The one QApplication, styled (Fusion, dark), named and with its icon."""
    app = QApplication.instance()
    if app is None:
        app = QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("bpviz")
    app.setOrganizationName("bpviz")
    app.setApplicationDisplayName("bpviz")
    app.setDesktopFileName("bpviz")
    app.setWindowIcon(app_icon())
    app.setStyle("Fusion")
    app.setPalette(theme.dark_palette())
    app.setStyleSheet(
        "QToolBar { spacing: 4px; padding: 3px; border: none; }"
        "QHeaderView::section { padding: 3px 6px; }"
        "QTabBar::tab { padding: 5px 14px; }"
        f"QStatusBar QLabel {{ color: {theme.STATUS_TEXT}; }}"
    )
    return app


def main(args: argparse.Namespace) -> int:
    """What `bpviz [FILE] [--steps N] [--screenshot PATH] …` does once the CLI parsed it; returns the exit code."""
    from bpviz.gui.window.main_window import MainWindow
    from bpviz.gui.window.screenshot import ScriptedRun

    if QApplication.instance() is None:
        reason = cannot_open_window()
        if reason is not None:
            print(reason, file=sys.stderr)
            return EXIT_COULD_NOT_RUN
    app = make_application()
    screenshot = getattr(args, "screenshot", None)
    steps = getattr(args, "steps", None) or 0
    file = getattr(args, "file", None)
    input_shape = getattr(args, "input_shape", None)
    # Screenshot runs are scripted: they neither read nor change the user's recent files and layout.
    settings = (
        Settings(ini_settings(Path(tempfile.mkdtemp(prefix="bpviz-")) / "settings.ini")) if screenshot else Settings()
    )
    window = MainWindow(
        settings=settings,
        dialogs=Dialogs() if not screenshot else NonInteractiveDialogs(),
        icon=app_icon(),
        remember_layout=not screenshot,
    )
    screen = getattr(args, "screen", None) or (SCREENSHOT_SCREEN if screenshot else None)
    if screen is not None:
        window.reset_layout(QRect(0, 0, *screen))
    if screenshot:
        script = ScriptedRun(window, steps, Path(screenshot))
    window.show()
    if file:
        window.code_trust.trusted.trust_for_session(Path(file))  # named on the command line: the user's own act

        def open_file() -> None:
            opened = window.open_path(
                Path(file),
                trust=True if getattr(args, "trust", False) else None,
                input_shape=tuple(input_shape) if input_shape else None,
                weights=getattr(args, "weights", None),
                seed=getattr(args, "seed", 0) or 0,
            )
            if not opened and screenshot:
                window.close()  # kills the experiment process before the event loop ends
                app.exit(EXIT_COULD_NOT_RUN)
            elif opened and screenshot and window.recording is not None:
                script.start_without_file()  # a recording is there at once: shoot its latest step
            elif opened and steps and not screenshot:
                window.loaded.connect(_run_once(window, steps))

        QTimer.singleShot(0, open_file)
    elif screenshot:
        script.start_without_file()
    code = app.exec()
    window.controller.shutdown()  # however the loop ended, no thread outlives the window
    window.settings.sync()  # the process may end without Qt's teardown: nothing may wait for it
    return code


def _run_once(window, steps: int):
    """A slot that runs `steps` steps after the first load only (not after every Reset)."""

    def run(_request) -> None:
        window.loaded.disconnect(run)
        window.run_n(steps)

    return run


class NonInteractiveDialogs(Dialogs):
    """Screenshot mode asks nobody: a pickled model needs --trust and --input-shape on the command line."""

    def confirm_trust(self, parent, path: Path) -> bool:
        print(
            f"bpviz: {path.name} is a pickled model; loading it runs code from the file. Pass --trust to allow it.",
            file=sys.stderr,
        )
        return False

    def confirm_run_code(self, parent, path: Path):
        print(
            f"bpviz: {path.name} is not a trusted experiment file; name it on the command line to run it.",
            file=sys.stderr,
        )
        return None

    def ask_input_shape(self, parent, path: Path):
        print(
            f"bpviz: {path.name} does not say what it eats; pass the shape of one sample, e.g. --input-shape 3,32,32.",
            file=sys.stderr,
        )
        return None
