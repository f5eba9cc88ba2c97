"""Starting the window: what a machine without a display or without Qt's X11 libraries is told, and exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from bpviz.gui.qt_platform import XCB_LIBRARIES, cannot_open_window, loadable

ROOT = Path(__file__).resolve().parents[2]
ANSWERS = lambda display: True  # noqa: E731  (an X server that answers on any display)


def _free_display() -> str:
    """A display number no X server listens on here (asking needs libxcb, as Qt's xcb plugin does)."""
    if not loadable("libxcb.so.1"):
        pytest.skip("libxcb is not installed: the missing library is reported instead")
    return next(f":{n}" for n in range(917, 999) if not Path(f"/tmp/.X11-unix/X{n}").exists())


def test_missing_xcb_libraries_are_named_with_the_packages_to_install():
    missing = {"libxcb-cursor.so.0", "libxkbcommon-x11.so.0"}
    reason = cannot_open_window({"DISPLAY": ":0"}, "linux", can_load=lambda name: name not in missing, answers=ANSWERS)
    assert "libxcb-cursor.so.0, libxkbcommon-x11.so.0" in reason
    assert "sudo apt-get install libxcb-cursor0 libxkbcommon-x11-0\n" in reason
    assert "QT_QPA_PLATFORM=offscreen" in reason


def test_no_display_is_said_plainly():
    reason = cannot_open_window({}, "linux", can_load=lambda name: True)
    assert "DISPLAY is not set" in reason and "QT_QPA_PLATFORM=offscreen" in reason


def test_nothing_is_reported_when_qt_can_open_a_window():
    everything = lambda name: True  # noqa: E731
    assert cannot_open_window({"DISPLAY": ":0"}, "linux", everything, ANSWERS) is None
    assert cannot_open_window({"QT_QPA_PLATFORM": "offscreen"}, "linux", lambda name: False) is None
    assert cannot_open_window({"WAYLAND_DISPLAY": "wayland-0"}, "linux", lambda name: False) is None
    assert cannot_open_window({}, "darwin", lambda name: False) is None
    assert cannot_open_window({"QT_QPA_PLATFORM": "xcb"}, "linux", everything) is not None  # xcb asked, no display


def test_a_display_nobody_answers_on_is_named_instead_of_an_abort():
    display = _free_display()
    reason = cannot_open_window({"DISPLAY": display}, "linux", lambda name: True)  # the real libxcb asks
    assert f"no X server answers on DISPLAY={display}" in reason and "QT_QPA_PLATFORM=offscreen" in reason


def test_the_window_on_a_display_nobody_answers_on_exits_2_with_what_to_do():
    missing = [name for name in XCB_LIBRARIES if not loadable(name)]
    if missing:  # the window names them instead, before it asks any display (the test above)
        pytest.skip(f"Qt's xcb libraries are not all installed: {', '.join(missing)}")
    env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    done = run_bpviz(str(ROOT / "sample_models" / "dying_relu.py"), env={**env, "DISPLAY": _free_display()})
    assert done.returncode == 2, done.stderr
    assert "no X server answers" in done.stderr and "core dumped" not in done.stderr


def test_every_library_has_a_package():
    assert all(package and package == package.lower() for package in XCB_LIBRARIES.values())


def run_bpviz(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bpviz", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_the_window_without_a_display_exits_2_with_what_to_do(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    done = run_bpviz(str(ROOT / "sample_models" / "dying_relu.py"), env=env)
    assert done.returncode == 2
    assert "DISPLAY is not set" in done.stderr and "QT_QPA_PLATFORM=offscreen" in done.stderr


def test_screenshot_of_an_untrusted_pickle_exits_2_with_the_trust_message(tmp_path):
    torch.save(nn.Sequential(nn.Linear(4, 3)), tmp_path / "whole_model.pt")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = run_bpviz(str(tmp_path / "whole_model.pt"), "--steps", "5", "--screenshot", str(tmp_path / "x.png"), env=env)
    assert done.returncode == 2, done.stderr
    assert "Pass --trust to allow it." in done.stderr and "QThread" not in done.stderr
    trusted = run_bpviz(
        str(tmp_path / "whole_model.pt"), "--trust", "--steps", "5", "--screenshot", str(tmp_path / "x.png"), env=env
    )
    assert trusted.returncode == 2, trusted.stderr  # no input shape: said, and no abort
    assert "--input-shape" in trusted.stderr and "QThread" not in trusted.stderr
    assert not (tmp_path / "x.png").exists()


def test_the_readme_names_every_system_package():
    readme = (ROOT / "README.md").read_text()
    assert all(f" {package}" in readme for package in XCB_LIBRARIES.values())
