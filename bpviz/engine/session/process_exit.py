"""Ending the `bpviz check` process once its report is out, whatever threads the user's code left running.

A non-daemon thread that never ends would keep the process alive after the report
(a CI job then hangs until its own limit), and a daemon thread still inside torch can
abort the interpreter's shutdown ("terminate called without an active exception",
exit 134). Once everything is flushed nothing is left to do, so the process ends
at once with its exit code when such threads remain, and normally otherwise.
The window's process always ends at once (`exit_now`): its state is saved when
the window closes, and the interpreter's own teardown (Qt deleting every
widget, Python freeing torch) took seconds after the window was gone.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import NoReturn


def end_process(code: int) -> int:
    """Return `code` when only the main thread is left; otherwise flush and end the process with it now."""
    if all(thread is threading.main_thread() for thread in threading.enumerate()):
        return code
    exit_now(code)


def exit_now(code: int) -> NoReturn:
    """Flush stdout and stderr and end the process with `code` now, without the interpreter's teardown."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (bpviz check | head) has nothing left to flush to
            pass
    os._exit(code)
