"""Python's cyclic garbage collector runs on the GUI thread only, in the window's process.

Left automatic, it runs on whichever thread allocates when a threshold is
crossed: often a reader thread decoding a run file. A reference cycle holding a
Qt object (a closed panel's widgets and the lambdas connected to them) collected
there destroys that object off the GUI thread; PySide hands part of the deletion
to the GUI thread, and the two threads then waited on each other, one for a
QObject's mutex and the other for the GIL: the window froze for good. pyqtgraph's
GarbageCollector turns the automatic collector off and collects from a timer on
the GUI thread, each generation when its threshold says so.
"""

from __future__ import annotations

from pyqtgraph.util.garbage_collector import GarbageCollector

_INTERVAL_S = 0.5  # garbage in cycles waits at most this long; reference counting frees the rest at once
_collector: GarbageCollector | None = None


def collect_on_gui_thread() -> None:
    """Collect cycles on the calling (GUI) thread's timer from now on; once per process, later calls do nothing."""
    global _collector
    if _collector is None:
        _collector = GarbageCollector(interval=_INTERVAL_S)
