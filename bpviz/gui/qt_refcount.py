"""A guard against a PySide6 reference-count bug that kills the process after a few thousand Qt calls.

PySide6 6.12 returns None (from every void method) and True (from
`SignalInstance.emit`) without taking a reference. On Python >= 3.12 those
objects are immortal and nothing happens; on Python 3.11 each call drops
their count by one, and after a few hundred emits (True starts near 600) or a
few thousand calls (None near 5 000) the interpreter aborts with
"bool_dealloc"/"none_dealloc: deallocating ... refcount error in a C extension".

`pin_singletons()` measures whether the running PySide6 has the bug and, if
so, adds 2**40 to the counts of None, True and False: what Python 3.12 does
for them anyway. It is idempotent and a no-op where the bug is absent.
"""

from __future__ import annotations

import ctypes
import sys

_PIN = 1 << 40
_PROBES = 64


def _add(obj: object, amount: int) -> None:
    ctypes.c_ssize_t.from_address(id(obj)).value += amount


def has_refcount_bug() -> bool:
    """True when void Qt calls or signal emits lose a reference to None/True in this interpreter."""
    from PySide6.QtCore import QObject, Signal

    class _Probe(QObject):
        ping = Signal()

    probe = _Probe()
    none_before, true_before = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(_PROBES):
        probe.setObjectName("probe")  # void: returns None
        probe.ping.emit()  # returns True
    lost_none = none_before - sys.getrefcount(None)
    lost_true = true_before - sys.getrefcount(True)
    # Give back what the probe itself took, so measuring never brings the crash nearer.
    if lost_none > 0:
        _add(None, lost_none)
    if lost_true > 0:
        _add(True, lost_true)
    return lost_none >= _PROBES // 2 or lost_true >= _PROBES // 2


def pin_singletons() -> bool:
    """Make None/True/False effectively immortal when this PySide6 needs it; True when it pinned them."""
    if sys.version_info >= (3, 12) or sys.getrefcount(None) > _PIN // 2:
        return False  # immortal already, or pinned by an earlier call
    if not has_refcount_bug():
        return False
    for obj in (None, True, False):
        _add(obj, _PIN)
    return True


pin_singletons()
