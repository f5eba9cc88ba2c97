"""Fixtures for every GUI test: one `window`, and Qt's own warnings about threads and ownership as failures.

A widget touched from another thread (the one reading the experiment
process's answers) does not always crash at once; Qt first prints "Cannot
create children for a parent that is in a different thread" or
"QObject::startTimer: Timers cannot be started from another thread". Such
a message fails the test that caused it, so this class of bug cannot come
back unseen.
"""

from __future__ import annotations

import pytest
from PySide6.QtCore import QtMsgType, qInstallMessageHandler

from bpviz.gui.window.dialogs import Dialogs
from bpviz.gui.window.runs_folder import ENVIRONMENT
from tests.gui.window_driver import make_window

# Qt messages that mean an object was used from the wrong thread or outlived its owner.
THREAD_WARNINGS = (
    "different thread",
    "another thread",
    "QThread: Destroyed",
    "Cannot create children",
    "QObject::",
    "QBasicTimer",
    "startTimer",
    "killTimer",
    "QSocketNotifier",
    "moveToThread",
)

_caught: list[str] = []


def thread_warning(message: str) -> bool:
    """Whether `message` is one the GUI tests refuse."""
    return any(marker in message for marker in THREAD_WARNINGS)


def _handler(kind: QtMsgType, _context, message: str) -> None:
    if kind != QtMsgType.QtDebugMsg and thread_warning(message):
        _caught.append(message)
    print(message)


@pytest.fixture(autouse=True)
def no_thread_warnings():
    """Fail the test if Qt warned about threads or object ownership while it ran (teardown included)."""
    _caught.clear()
    previous = qInstallMessageHandler(_handler)
    yield
    qInstallMessageHandler(previous)
    caught, _caught[:] = list(_caught), []
    assert not caught, "Qt warned about threads or object ownership:\n" + "\n".join(caught)


@pytest.fixture(autouse=True)
def runs_in_tmp(tmp_path, monkeypatch):
    """The runs the window records go to the test's own folder, never the user's."""
    folder = tmp_path / "recorded-runs"
    monkeypatch.setenv(ENVIRONMENT, str(folder))
    return folder


@pytest.fixture
def dialogs() -> Dialogs:
    """The window's dialogs; a test module overrides this fixture to answer prompts without blocking."""
    return Dialogs()


@pytest.fixture
def window(qtbot, tmp_path, dialogs):
    """A shown main window with its own settings file, closed (its experiment process killed) after the test."""
    win = make_window(qtbot, tmp_path / "settings.ini", dialogs)
    yield win
    win.close()
