"""A file while it loads, and a file that fails to load: what the window says, and what the user can do next.

A build() that never returns is shown for as long as it runs (which file, how
many seconds) with Stop, which kills the process loading it. A build() that
crashes or ends its process names the file and says nothing was recorded
(whatever run is still on screen is not this file's). Either way the file is in
Recent and Reset, now Reload, loads it again once fixed. Real experiment
processes throughout.
"""

from __future__ import annotations

import pytest

from bpviz.gui.training.fork_server import ForkServer
from bpviz.gui.window.start_page import PATH_ROLE
from tests.gui.window_driver import LOAD_MS, SAMPLES, make_window, open_file, run_steps, write

WORKS = """
import torch
from torch import nn


def build():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(16, 4, generator=g), torch.randint(0, 3, (16,), generator=g))]
    return {"model": model, "train_data": data}
"""

WHERE = {  # the line of broken.py named, and the start of Details (from the stack the process left, if any)
    "import ctypes\n    ctypes.string_at(0)": (":3", "The experiment process's Python stack when it died"),
    "import os\n    os._exit(5)": ("", "The process ended without leaving a Python stack"),
    "import sys\n    sys.exit(3)": (":3", "Traceback (most recent call last):"),
}
FAILS = {  # what build() does -> what the window's banner says
    "import ctypes\n    ctypes.string_at(0)": (
        "broken.py crashed (SIGSEGV) while build() ran, before any step: nothing was recorded"
    ),
    "import os\n    os._exit(5)": (
        "broken.py ended its process with exit code 5 while build() ran, before any step: nothing was recorded"
    ),
    "import sys\n    sys.exit(3)": "build() called sys.exit(3) at broken.py:3",  # caught in the process
}


def broken(tmp_path, body: str):
    return write(tmp_path, "broken.py", f"def build():\n    {body}\n    return {{}}\n")


def start_loading(qtbot, window, path) -> None:
    window.code_trust.trusted.trust_for_session(path)
    assert window.open_path(path)


def fail_to_load(qtbot, window, path):
    """Open `path` (whose build() fails); the error the window took in."""
    with qtbot.waitSignal(window.load_failed, timeout=LOAD_MS) as failed:
        start_loading(qtbot, window, path)
    return failed.args[0]


def reload_works(qtbot, window, path) -> None:
    """Fix `path`, press Reload (Ctrl+R): it loads and steps."""
    path.write_text(WORKS)
    with qtbot.waitSignal(window.loaded, timeout=LOAD_MS) as loaded:
        window.actions_.reset.trigger()
    assert loaded.args[0].path == path
    assert window.windowTitle() == f"{path.name} — bpviz" and window.actions_.reset.text() == "Rese&t"
    with qtbot.waitSignal(window.stepped, timeout=LOAD_MS):
        window.actions_.step.trigger()


def test_a_build_that_never_returns_is_shown_loading_and_stop_kills_it(qtbot, window, tmp_path):
    fail_to_load(qtbot, window, broken(tmp_path, "x = 1 / 0"))
    assert window.error_panel.isVisible()
    path = write(tmp_path, "hangs.py", "def build():\n    while True:\n        pass\n")
    assert not window.actions_.stop.isEnabled()
    start_loading(qtbot, window, path)
    # the previous file's failure is gone at once, and the window names the file loading
    assert not window.error_panel.isVisible() and window.windowTitle() == "Loading hangs.py… — bpviz"
    strip = window.loading_panel
    assert strip.isVisible() and strip.label.text() == "Loading hangs.py… 0 s"
    qtbot.waitUntil(lambda: strip.label.text() == "Loading hangs.py… 1 s", timeout=LOAD_MS)  # it counts
    assert window.actions_.stop.isEnabled() and window.actions_.stop.shortcut().toString() == "Shift+F5"
    assert strip.stop_button.defaultAction() is window.actions_.stop
    qtbot.waitUntil(lambda: window.controller.client.pending is not None)
    hung = window.controller.client.pending.process
    with qtbot.waitSignal(window.load_failed, timeout=LOAD_MS) as failed:
        window.actions_.stop.trigger()
    assert not hung.is_alive()
    what = failed.args[0].what
    assert what.startswith("hangs.py: stopped after ") and what.endswith(
        " s while build() ran, before any step: nothing was recorded"
    )
    assert window.error_panel.isVisible() and window.error_panel.title.text() == what
    assert "you pressed Stop and its experiment process was killed" in window.error_panel.text()
    assert failed.args[0].where in (f"{path}:2", f"{path}:3")  # where build() spun, from the stack it left
    assert f'File "{path}", line' in window.error_panel.details.toPlainText()
    assert not strip.isVisible() and not window.actions_.stop.isEnabled()
    assert window.windowTitle() == "bpviz"  # nothing is loaded
    assert window.actions_.reset.isEnabled() and window.actions_.reset.text() == "Re&load"
    reload_works(qtbot, window, path)


@pytest.mark.parametrize("body", list(FAILS))
def test_a_build_that_fails_names_the_file_and_reload_loads_it_again(qtbot, window, tmp_path, body):
    path = broken(tmp_path, body)
    error = fail_to_load(qtbot, window, path)
    assert error.what == FAILS[body]
    assert window.error_panel.isVisible() and window.error_panel.title.text() == FAILS[body]
    assert "kept" not in window.error_panel.text()
    line, details = WHERE[body]
    assert error.where == f"{path}{line}" and window.error_panel.details.toPlainText().startswith(details)
    assert not window.loading_panel.isVisible() and window.windowTitle() == "bpviz"
    assert window.settings.recent_files()[0] == path.resolve()  # a click away on the start page and in Recent
    assert window.start_page.recent.item(0).data(PATH_ROLE) == str(path.resolve())
    assert window.actions_.reset.isEnabled() and window.actions_.reset.text() == "Re&load"
    reload_works(qtbot, window, path)


def test_a_file_that_crashes_while_another_run_is_shown_says_which_run_that_is(qtbot, window, tmp_path):
    open_file(qtbot, window, SAMPLES["dying_relu"])
    run_steps(qtbot, window, 2)
    path = broken(tmp_path, "import ctypes\n    ctypes.string_at(0)")
    start_loading(qtbot, window, path)
    assert window.windowTitle() == "Loading broken.py… — bpviz" and window.loading_panel.isVisible()
    with qtbot.waitSignal(window.load_failed, timeout=LOAD_MS):
        pass
    assert window.error_panel.title.text() == FAILS["import ctypes\n    ctypes.string_at(0)"]
    assert window.error_panel.text().endswith("; the window still shows dying_relu.py")
    assert window.error_panel.text().count("\n  where: ") == 1 and str(path) in window.error_panel.text()
    assert window.windowTitle() == "dying_relu.py — bpviz" and len(window.history) == 2  # the open model stays
    assert window.actions_.reset.isEnabled() and window.actions_.reset.text() == "Re&load"
    assert window.actions_.step.isEnabled()
    reload_works(qtbot, window, path)


def test_a_recording_opened_while_a_file_loads_stops_that_load_and_stays(qtbot, window, tmp_path):
    """Left to finish, the load replaced the recording the user had opened since."""
    from tests.engine.run_files import seeded_run

    recording = tmp_path / "kept.bpviz"
    seeded_run(recording, steps=3)
    start_loading(qtbot, window, write(tmp_path, "hangs.py", "def build():\n    while True:\n        pass\n"))
    qtbot.waitUntil(lambda: window.controller.client.pending is not None)
    hung = window.controller.client.pending.process
    with qtbot.waitSignal(window.load_failed, timeout=LOAD_MS) as failed:
        assert window.open_path(recording)
    assert not hung.is_alive()
    assert failed.args[0].what.startswith("hangs.py: stopped after ")
    assert "the window still shows kept.bpviz" in window.error_panel.text()
    assert window.recording is not None and window.recording.path == recording.resolve()
    assert window.windowTitle().startswith("kept.bpviz") and not window.loading_panel.isVisible()


@pytest.fixture
def server_starting(qtbot, tmp_path, dialogs, monkeypatch):
    """A window whose fork server has not begun to serve (it imports torch for seconds on a first start)."""
    monkeypatch.setattr(ForkServer, "_start", lambda self: None)
    win = make_window(qtbot, tmp_path / "settings.ini", dialogs)
    yield win
    win.close()


def test_a_file_loaded_while_the_fork_server_starts_waits_for_it_in_a_window_that_draws(
    qtbot, server_starting, tmp_path
):
    """The first Process.start() waited for the fork server's imports on the GUI thread: the window stayed black,
    unpainted, for seconds. The load now waits for the server, with the loading strip, while the window draws."""
    window, path = server_starting, write(tmp_path, "works.py", WORKS)
    client = window.controller.client
    start_loading(qtbot, window, path)
    assert client.pending is None and window.loading_panel.isVisible()
    assert window.windowTitle() == "Loading works.py… — bpviz"
    with qtbot.waitSignal(window.loaded, timeout=LOAD_MS) as loaded:
        client.server._on_started()  # the server serves: the load asked before goes on
    assert loaded.args[0].path == path and not window.loading_panel.isVisible()
    with qtbot.waitSignal(window.stepped, timeout=LOAD_MS):
        window.actions_.step.trigger()


def test_stop_while_the_fork_server_starts_ends_the_load_before_any_process(qtbot, server_starting, tmp_path):
    window, path = server_starting, write(tmp_path, "works.py", WORKS)
    client = window.controller.client
    start_loading(qtbot, window, path)
    assert window.actions_.stop.isEnabled()
    with qtbot.waitSignal(window.load_failed, timeout=LOAD_MS) as failed:
        window.actions_.stop.trigger()
    assert (
        failed.args[0].what
        == "works.py: stopped after 0 s, before its experiment process started: nothing was recorded"
    )
    assert window.error_panel.isVisible() and not window.loading_panel.isVisible()
    client.server._on_started()
    assert client.pending is None and client.processes() == []  # nothing is started once the server serves
    assert window.actions_.reset.isEnabled() and window.actions_.reset.text() == "Re&load"


def test_a_window_closed_before_its_fork_server_serves_leaves_no_error_behind(qtbot, monkeypatch):
    """The starting thread told a ForkServer already deleted with the window: RuntimeError in a thread."""
    import threading

    import shiboken6

    proceed, failures = threading.Event(), []

    class Waiting:
        """A context whose check child takes until `proceed` is set to start."""

        def Process(self, **kwargs):  # noqa: N802 - multiprocessing's name
            return Waiting()

        def start(self):
            proceed.wait()

        def join(self):
            pass

    monkeypatch.setattr(threading, "excepthook", lambda args: failures.append(args.exc_value))
    server = ForkServer(Waiting())
    thread = next(t for t in threading.enumerate() if t.name == "bpviz-fork-server")
    shiboken6.delete(server)  # the window, and the server with it, closed
    proceed.set()
    thread.join()
    assert failures == []
