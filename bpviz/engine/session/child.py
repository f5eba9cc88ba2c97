"""The experiment's own process: the window's debuggee, running every line of user code bpviz runs for it.

The window starts it (forked from a fork server: a fresh interpreter, no Qt,
no state inherited from the window) with one end of a Pipe and a Position
block it keeps up to date (engine/session/position.py). Its main
thread obeys the queued commands one at a time through a SessionDriver; a
listening thread takes every message as it arrives, so Stop, Pause, the
gate's resume/abort and new breakpoints reach the driver while user code
holds the main thread. Whatever the user's code does to this process (an
endless loop, sys.exit, os._exit, a segfault), the window only sees the
channel close, the exit code and the last position, and stays alive.
"""

from __future__ import annotations

import os
import queue
import threading
from multiprocessing.connection import Connection

from bpviz.engine.session.crash_log import enable as enable_crash_log
from bpviz.engine.session.driver import SessionDriver
from bpviz.engine.session.position import Position
from bpviz.engine.session.protocol import IMMEDIATE, QUEUED_COMMANDS


def leave_a_core_for_the_window() -> int:
    """Cap torch's intra-op threads one below the core count, so the window's GUI thread always finds a free core.

    With every core in torch's pool, the window's process preempts one of the
    pool's threads and every parallel op waits at its barrier for it: training
    slows several-fold and the window stutters. Returns the thread count in use.
    """
    import torch

    cores = os.cpu_count() or 1
    if cores > 1 and torch.get_num_threads() >= cores:
        torch.set_num_threads(cores - 1)
    return torch.get_num_threads()


def serve(conn: Connection, position: Position | None = None, crash_log: str | None = None) -> None:
    """Obey `conn` until it closes or a `close` command arrives (the entry point of the child process).

    With `crash_log`, a fatal signal or SIGTERM leaves the process's Python stack in that file (crash_log.py)."""
    if crash_log is not None:
        enable_crash_log(crash_log)
    leave_a_core_for_the_window()
    lock = threading.Lock()

    def send(kind: str, *args) -> None:
        with lock:
            conn.send((kind, args))

    driver = SessionDriver(send, position)
    commands: queue.SimpleQueue = queue.SimpleQueue()

    def listen() -> None:
        while True:
            try:
                kind, args = conn.recv()
            except (EOFError, OSError):
                os._exit(0)  # the window is gone: nobody is left to answer, and user threads must not keep us
            if kind in IMMEDIATE:
                obey_now(driver, kind, args)
            else:
                commands.put((kind, args))

    threading.Thread(target=listen, name="bpviz-control", daemon=True).start()
    while True:
        kind, args = commands.get()
        if kind not in QUEUED_COMMANDS:
            continue
        getattr(driver, kind)(*args)
        if kind == "close":
            send("closed")
            return


def obey_now(driver: SessionDriver, kind: str, args: tuple) -> None:
    """A command that must not wait behind the step in progress."""
    if kind == "stop":
        driver.request_stop(*args)
        driver.gate.abort()
    elif kind == "resume":
        driver.gate.resume(*args)
    elif kind == "abort":
        driver.gate.abort()
    elif kind == "breakpoints":
        driver.breakpoints = list(args[0])
    elif kind == "state":
        driver.state(*args)
