"""Ending a run from outside (Ctrl+C, SIGTERM, SIGHUP, a time limit) without losing what it recorded.

A handler raises `Interrupted` in the main thread, wherever user code is: a
BaseException, so a user's `except Exception` lets it through, and a class of its
own, so it is never mistaken for user code's own KeyboardInterrupt or sys.exit()
(see bpviz.engine.user_error.USER_CODE_ENDINGS). While the report is being written
a signal is only noted: the report is finished first. A second signal ends the
process at once, for a user who insists. A time limit that user code does not let
through (a C call that never returns, an `except BaseException`) is ended by a
watchdog thread after a grace period, which first hands what was recorded to
`on_stuck`.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
GRACE_S = 10.0  # after the time limit, how long user code has to let the interruption through
EXIT_TIMEOUT = 2  # a run that did not finish in time could not run, in the exit-code contract


class Interrupted(BaseException):
    """The run was ended from outside: `reason` is a signal's name or "timeout"."""

    def __init__(self, reason: str, exit_code: int, seconds: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.exit_code = exit_code  # 128 + the signal's number (130 for Ctrl+C), or EXIT_TIMEOUT
        self.seconds = seconds  # the time limit, for a timeout

    @classmethod
    def by_signal(cls, signum: int) -> Interrupted:
        return cls(signal.Signals(signum).name, 128 + signum)

    @classmethod
    def by_timeout(cls, seconds: float) -> Interrupted:
        return cls("timeout", EXIT_TIMEOUT, seconds)

    def describe(self) -> str:
        """One line for the terminal."""
        if self.reason == "timeout":
            return f"stopped: the run took longer than --timeout {self.seconds:g} s"
        return f"interrupted by {self.reason}"


class Interruptions:
    """Signal and time-limit handling for one run in the main thread; see the module's docstring."""

    def __init__(self) -> None:
        self.finishing = False  # set while the report is written: signals are noted, not raised
        self.noted: Interrupted | None = None  # the first interruption, raised or noted
        self._raised_timeout = False

    def _on_signal(self, signum: int, _frame) -> None:
        if self.noted is not None and self.noted.reason != "timeout":
            print(f"\nbpviz: {signal.Signals(signum).name} again, ending at once", file=sys.stderr, flush=True)
            os._exit(128 + signum)
        self.noted = Interrupted.by_signal(signum)
        if not self.finishing:
            raise self.noted

    def _on_alarm(self, seconds: float) -> None:
        if self.noted is None and not self.finishing:
            self.noted = Interrupted.by_timeout(seconds)
            raise self.noted


@contextmanager
def interruptible(timeout: float | None, on_stuck: Callable[[Interrupted], None]) -> Iterator[Interruptions]:
    """Within: the signals and the time limit raise Interrupted (only in the main thread, where handlers can live).

    `on_stuck` is called from a watchdog thread when the run ignores its time limit for GRACE_S seconds;
    the process ends with EXIT_TIMEOUT once it returns.
    """
    state = Interruptions()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    previous = {signum: signal.signal(signum, state._on_signal) for signum in SIGNALS}
    watchdog = None
    if timeout is not None:
        previous[signal.SIGALRM] = signal.signal(signal.SIGALRM, lambda _s, _f: state._on_alarm(timeout))
        signal.setitimer(signal.ITIMER_REAL, timeout)
        watchdog = threading.Timer(timeout + GRACE_S, _end_stuck, args=(on_stuck, timeout))
        watchdog.daemon = True
        watchdog.start()
    try:
        yield state
    finally:
        if watchdog is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
            watchdog.cancel()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _end_stuck(on_stuck: Callable[[Interrupted], None], timeout: float) -> None:
    interrupted = Interrupted.by_timeout(timeout)
    print(
        f"\nbpviz: the run did not stop within {GRACE_S:g} s of its time limit; ending it", file=sys.stderr, flush=True
    )
    try:
        on_stuck(interrupted)
    finally:
        os._exit(interrupted.exit_code)
