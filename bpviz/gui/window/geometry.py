"""The window's size and place: within the screen it opens on, restored as it was left, never off screen.

A fixed 1600x960 does not fit a 1280x800 laptop (docks and status bar fall off
the bottom), and a geometry saved on a large monitor comes back larger than a
small one. So the opening size is the preferred size bounded by the screen's
*available* area (without panels and docks of the desktop), and a restored
geometry is clamped into that area the same way. Restoring goes through
`restoreGeometry` (which knows the window frame), never through `pos()`, which
is the frame's corner on some window managers and the client's on others:
moving to it shifts the window by the title bar's height on every restart.
"""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QMargins, QRect, QSize
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QWidget

PREFERRED_SIZE = QSize(1600, 960)
# Room the window manager's frame takes before the window is shown and its real frame is known.
FRAME_ALLOWANCE = QMargins(2, 30, 2, 2)


def available_geometry(window: QWidget) -> QRect:
    """The usable area of the screen the window is on (the primary screen before it is shown)."""
    screen = window.screen() or QGuiApplication.primaryScreen()
    return (
        screen.availableGeometry()
        if screen is not None
        else QRect(0, 0, PREFERRED_SIZE.width(), PREFERRED_SIZE.height())
    )


def frame_margins(window: QWidget) -> QMargins:
    """The frame around the client area: the real one once shown, a usual title bar's before."""
    frame, inner = window.frameGeometry(), window.geometry()
    real = QMargins(
        inner.left() - frame.left(),
        inner.top() - frame.top(),
        frame.right() - inner.right(),
        frame.bottom() - inner.bottom(),
    )
    return real if window.isVisible() and real.top() > 0 else FRAME_ALLOWANCE


def clamp(client: QRect, available: QRect, frame: QMargins = FRAME_ALLOWANCE) -> QRect:
    """`client` (the area inside the frame) made no larger than `available` allows and moved inside it."""
    room = available.marginsRemoved(frame)
    width, height = min(client.width(), room.width()), min(client.height(), room.height())
    left = min(max(client.left(), room.left()), room.right() + 1 - width)
    top = min(max(client.top(), room.top()), room.bottom() + 1 - height)
    return QRect(left, top, width, height)


def opening_rect(available: QRect, preferred: QSize = PREFERRED_SIZE, frame: QMargins = FRAME_ALLOWANCE) -> QRect:
    """The preferred size, bounded by the available area and centred in it."""
    room = available.marginsRemoved(frame)
    width, height = min(preferred.width(), room.width()), min(preferred.height(), room.height())
    left = room.left() + (room.width() - width) // 2
    top = room.top() + (room.height() - height) // 2
    return QRect(left, top, width, height)


def place(window: QWidget, saved: QByteArray | None, available: QRect | None = None) -> None:
    """Restore `saved` (from saveGeometry) or open at the preferred size; either way fit `available`."""
    available = available if available is not None else available_geometry(window)
    if saved is None or not window.restoreGeometry(saved):
        window.setGeometry(opening_rect(available))
    fit(window, available)


def fit(window: QWidget, available: QRect | None = None) -> None:
    """Shrink and move the window so that it and its frame lie within `available` (the screen's usable area)."""
    available = available if available is not None else available_geometry(window)
    if window.isMaximized() or window.isFullScreen():
        return
    inside = clamp(window.geometry(), available, frame_margins(window))
    if inside != window.geometry():
        window.setGeometry(inside)
