"""Can Qt open a window here? Asked before the QApplication exists, since Qt itself answers with a core dump.

Without a display, or without the X11 libraries Qt's xcb plugin links to,
`QApplication()` aborts the process with a hint that is often wrong
("xcb-cursor0 is needed" even when it is installed). This module finds the
actual cause first and says what to do: which Debian/Ubuntu packages to
install, or that `QT_QPA_PLATFORM=offscreen` runs without a display.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable, Mapping

# The libraries PySide6's libqxcb.so and libQt6XcbQpa need beyond Qt itself (from `ldd` on both), with the
# Debian/Ubuntu package that ships each.
XCB_LIBRARIES = {
    "libxcb.so.1": "libxcb1",
    "libX11.so.6": "libx11-6",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libGL.so.1": "libgl1",
    "libEGL.so.1": "libegl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
}

OFFSCREEN_HINT = "Without a display, QT_QPA_PLATFORM=offscreen runs the window off screen (e.g. with --screenshot)."


def loadable(soname: str) -> bool:
    """Whether the dynamic loader finds `soname`."""
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


def x_server_answers(display: str) -> bool:
    """Whether an X server takes a connection on `display`, asked through libxcb as Qt's xcb plugin will ask.

    A DISPLAY left over from a closed session (a stopped Xvfb, an ssh login
    without forwarding) otherwise ends in Qt's abort and core dump.
    """
    try:
        xcb = ctypes.CDLL("libxcb.so.1")
    except OSError:
        return True  # the missing library is what gets reported
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    connection = xcb.xcb_connect(display.encode(), None)  # never NULL: a failed one carries its error
    try:
        return xcb.xcb_connection_has_error(connection) == 0
    finally:
        xcb.xcb_disconnect(connection)


def cannot_open_window(
    env: Mapping[str, str] | None = None,
    platform: str | None = None,
    can_load: Callable[[str], bool] = loadable,
    answers: Callable[[str], bool] = x_server_answers,
) -> str | None:
    """Why Qt would fail to open a window now (what to do included), or None when it should work.

    Only Linux's xcb platform is checked: other platforms (offscreen, wayland, macOS, Windows) bring
    what they need or fail with a clear message of their own.
    """
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if not platform.startswith("linux"):
        return None
    chosen = env.get("QT_QPA_PLATFORM", "").split(":")[0].strip().lower()
    if chosen not in ("", "xcb"):
        return None
    if chosen == "" and env.get("WAYLAND_DISPLAY"):
        return None  # Qt picks its wayland plugin in a Wayland session
    if not env.get("DISPLAY"):
        return "bpviz: no display to open the window on (DISPLAY is not set).\n" + OFFSCREEN_HINT
    missing = [name for name in XCB_LIBRARIES if not can_load(name)]
    if not missing:
        if answers(env["DISPLAY"]):
            return None
        return (
            f"bpviz: no X server answers on DISPLAY={env['DISPLAY']}: it is not running, or this user may not "
            "connect to it (check XAUTHORITY, or ssh -X for a remote login).\n" + OFFSCREEN_HINT
        )
    packages = " ".join(dict.fromkeys(XCB_LIBRARIES[name] for name in missing))
    return (
        f"bpviz: the window cannot start: Qt's X11 (xcb) platform needs {', '.join(missing)}, "
        "not found on this machine.\n"
        f"On Debian or Ubuntu: sudo apt-get install {packages}\n" + OFFSCREEN_HINT
    )
