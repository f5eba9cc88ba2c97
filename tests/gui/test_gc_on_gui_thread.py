"""Garbage in reference cycles is collected on the GUI thread, whichever thread allocates.

Collected on a reader thread (which decodes run files and so allocates the
most), a cycle holding a Qt object froze the window for good: the reader waited
for the GIL inside ~QObject, the GUI thread for that QObject's mutex.
"""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Qt


def test_a_cycle_holding_a_qt_object_dies_on_the_gui_thread_whatever_thread_allocates(qtbot, window):
    died_on: list[threading.Thread] = []
    doomed = QObject()
    doomed.cycle = doomed  # only the cyclic collector frees it
    doomed.destroyed.connect(lambda: died_on.append(threading.current_thread()), Qt.ConnectionType.DirectConnection)
    del doomed
    allocated: list[list] = []
    # a reader thread's allocations: enough tracked objects to cross the young generation's threshold many times
    reader = threading.Thread(target=lambda: allocated.extend([] for _ in range(200_000)))
    reader.start()
    reader.join()
    assert died_on == []  # not collected on the reader
    qtbot.waitUntil(lambda: bool(died_on), timeout=5000)
    assert died_on == [threading.main_thread()]
