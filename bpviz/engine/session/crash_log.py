"""The Python stack an experiment process leaves behind when it dies without a word: a segfault, or Stop's SIGTERM.

Such a process cannot send its traceback over the control channel. Python's
faulthandler can still write it, from its signal handler, into a file the
window named; the window reads that file once the process is gone, so
"crashed (SIGSEGV)" comes with the line of the user's file it died on
("segv.py:6") and the stack behind Details. A process that ends with
os._exit() or SIGKILL writes nothing, and the file stays empty.
"""

from __future__ import annotations

import faulthandler
import re
import signal
from dataclasses import dataclass
from pathlib import Path

_FRAME = re.compile(r'File "(?P<file>.+)", line (?P<line>\d+) in ')
_kept: list = []  # the open log: faulthandler writes to its descriptor until the process ends


def enable(path: str) -> None:
    """In the experiment process: dump every thread's stack into `path` on a fatal signal, and on SIGTERM."""
    log = open(path, "w")  # open for the life of the process, by design
    _kept.append(log)
    faulthandler.enable(log, all_threads=True)
    faulthandler.register(signal.SIGTERM, log, all_threads=True, chain=True)  # then SIGTERM ends it as before


@dataclass(frozen=True)
class Stack:
    """What the log holds: the dump as written, and `file:line` of the innermost frame in the user's file."""

    text: str
    where: str | None


def read(path: str | Path, source: Path | None) -> Stack:
    """The stack logged at `path`; `where` is the innermost frame of `source` (the experiment file) it lists."""
    try:
        text = Path(path).read_text(errors="replace").strip()
    except OSError:
        return Stack("", None)
    wanted = str(source.resolve()) if source is not None else None
    for match in _FRAME.finditer(text):  # faulthandler lists the most recent call first
        if wanted is not None and str(Path(match["file"]).resolve()) == wanted:
            return Stack(text, f"{match['file']}:{match['line']}")
    return Stack(text, None)
