"""The experiment process, from the window's side: commands down the control channel, answers back as signals.

`ProcessClient` sends every command to an experiment process
(engine/session/child.py) and turns every answer, read on a reader thread,
into the signal of the same name (engine/session/driver.py ANSWERS), queued
onto the GUI thread. An answer that says the run file holds something new
(stepped, validated, intervened, and the process's end) comes with what it
gained (playback.News), read from the file on that same reader thread, so the
GUI thread only appends it to the view it draws, and in the order the child
answered. Each load starts a fresh child; the current one is
replaced only once the new one has loaded, so a file that fails to load
leaves the model as it was, and a load that hangs is killed by Stop (`end`)
or when another file is opened. When the current child dies (any exit code,
any signal) `died` carries what happened, where, read from the position the
child kept in shared memory: "the experiment process was killed by signal
SIGSEGV in backward of fc2 at step 3". A child that dies while it loads
(`load_death`) is told by its file's name, since nothing of it was recorded.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot

from bpviz.engine.config import Config
from bpviz.engine.runs.branches import MAIN
from bpviz.engine.runs.errors import RunFileError
from bpviz.engine.runs.playback import News, Playback
from bpviz.engine.runs.reader import open_run
from bpviz.engine.runs.writer import fold_in
from bpviz.engine.session import crash_log
from bpviz.engine.session.breakpoints import Breakpoint
from bpviz.engine.session.child import serve
from bpviz.engine.session.events import RunView
from bpviz.engine.session.position import Position
from bpviz.engine.session.protocol import LoadRequest
from bpviz.engine.user_error import UserCodeError
from bpviz.gui.training.fork_server import ForkServer, experiment_context

READS = ("stepped", "validated", "intervened")  # answers saying the run file holds something new
GRACE_MS = 2000  # how long Stop waits for a busy child to answer, then for it to end once terminated
QUEUED = Qt.ConnectionType.QueuedConnection


@dataclass(eq=False)
class Child:
    """One experiment process, the window's end of its channel, and the position it keeps."""

    process: multiprocessing.process.BaseProcess
    conn: object
    position: Position
    run_path: Path | None = None  # the run file it records
    playback: Playback | RunFileError | None = None  # that file, read on the reader thread only
    request: LoadRequest | None = None  # what it was started to load
    log_path: str | None = None  # where it writes its Python stack if it dies without a word (crash_log.py)
    stack: crash_log.Stack = crash_log.Stack("", None)  # what that file held once it ended (read by its reader)
    started: float = 0.0  # time.monotonic() when it was asked for: a stopped load says how long it ran
    ended_by: str | None = None  # "window" (killed on purpose, say nothing), "pause" (no answer in time) or "stop"
    reader: threading.Thread | None = field(default=None, repr=False)

    def send(self, kind: str, *args) -> None:
        try:
            self.conn.send((kind, args))
        except (OSError, ValueError):  # already dead: its reader reports the exit
            pass

    def kill(self) -> None:
        """End it now (SIGKILL), quietly: a child the window gave up on."""
        self.ended_by = "window"
        if self.process.is_alive():
            self.process.kill()
        self.process.join(1)
        self.conn.close()


def _signal_name(code: int) -> str:
    """SIGSEGV for exit code -11 (a process killed by that signal)."""
    return signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)


def death(child: Child) -> UserCodeError:
    """What the user is told when `child`, the current one, died on its own (or was ended), and where it was."""
    code = child.process.exitcode
    where = child.position.read()
    stack = child.stack
    kept = "every step recorded before it is kept" if _recorded(child) else "no step was recorded"
    if child.ended_by == "stop":
        what = f"Stopped: the experiment process was killed {where.words()}"
        why = "you pressed Stop"
    elif child.ended_by == "pause":
        what = f"The experiment process was ended by Stop {where.words()}"
        why = "the step did not return within the grace period"
    elif code is not None and code < 0:
        name = _signal_name(code)
        what = f"The experiment process was killed by signal {name} {where.words()}"
        why = f"{name} (exit code {code})"
    else:
        what = f"The experiment process exited with code {code} {where.words()}"
        why = f"exit code {code}"
    return UserCodeError(what, f"{why}; {kept}: press Reset to start again", stack.where, where.layer, _details(stack))


def load_death(child: Child) -> UserCodeError:
    """What the user is told when `child` ended before its file loaded: nothing of it was recorded, so nothing is kept.

    "hangs.py: stopped after 14 s while build() ran, before any step: nothing was recorded"."""
    code = child.process.exitcode
    name = child.request.path.name if child.request is not None else "The experiment file"
    stack = child.stack
    if child.ended_by == "stop":
        what = f"{name}: stopped after {time.monotonic() - child.started:.0f} s while build() ran"
        why = "you pressed Stop and its experiment process was killed"
    elif code is not None and code < 0:
        what = f"{name} crashed ({_signal_name(code)}) while build() ran"
        why = f"its experiment process was killed by signal {_signal_name(code)} (exit code {code})"
    else:
        what = f"{name} ended its process with exit code {code} while build() ran"
        why = "os._exit() or a library ended the experiment process"
    return UserCodeError(
        f"{what}, before any step: nothing was recorded",
        f"{why}; fix the file, then Reload (Ctrl+R) loads it again",
        stack.where or (str(child.request.path) if child.request is not None else None),
        details=_details(stack),
    )


def _stopped_before_start(request: LoadRequest, started: float) -> UserCodeError:
    """Stop pressed while the fork server still started: the experiment's process never began."""
    return UserCodeError(
        f"{request.path.name}: stopped after {time.monotonic() - started:.0f} s, before its experiment process "
        "started: nothing was recorded",
        "you pressed Stop while bpviz started the process that runs experiments; Reload (Ctrl+R) loads it again",
        str(request.path),
    )


def _details(stack: crash_log.Stack) -> str:
    """Details for a process that died: its stack as it died, or why there is none."""
    if stack.text:
        return f"The experiment process's Python stack when it died (most recent call first):\n\n{stack.text}"
    return "The process ended without leaving a Python stack (os._exit(), or killed by SIGKILL)."


def _recorded(child: Child) -> bool:
    """Whether `child`'s run file holds a step (read on its reader thread, which has ended)."""
    return isinstance(child.playback, Playback) and child.playback.last is not None


def _open(path: Path, branch: int = MAIN) -> Playback | RunFileError:
    """The run file `path` (its `branch`), read for the window: its whole in-memory history long."""
    try:
        return Playback(open_run(path, branch))
    except RunFileError as error:
        return error


class ProcessClient(QObject):
    """Lives on the GUI thread; the controller's handle on the experiment process."""

    # the driver's answers (engine/session/driver.py ANSWERS), emitted on the GUI thread
    # stepped, validated, intervened and died come with a last argument: the run file's News (or the
    # RunFileError that reading it raised, or None when there is nothing to read)
    loaded = Signal(object, object, bool)  # LoadRequest, run file path, whether it has validation data
    stepped = Signal(int, object)
    validated = Signal(int, object, object)
    intervened = Signal(int, str, object)
    rewound = Signal(int, int, object)  # step, branch, the RunView of that branch's line up to `step` (or the error)
    failed = Signal(object)
    load_failed = Signal(object)
    run_started = Signal(int)
    progress = Signal(int, int)
    run_finished = Signal(str)
    step_aborted = Signal()
    paused = Signal(object)
    breakpoint_hit = Signal(object)
    remedy_failed = Signal(str)
    graph_changed = Signal(object)
    units_inspected = Signal(str, int, object)
    hyperparameters = Signal(object)
    state = Signal(object)
    died = Signal(object, object)  # UserCodeError: the current child is gone; nothing is loaded any more

    _message = Signal(object, str, object)  # child, kind, args: from a reader thread
    _exited = Signal(object, object)  # child, its run file's last News

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.context = experiment_context()
        self.server = ForkServer(self.context, self)
        self.server.ready.connect(self._on_server_ready)
        self.current: Child | None = None
        self.pending: Child | None = None
        self._waiting: tuple[LoadRequest, float] | None = None  # a load asked before the fork server served
        self._breakpoints: list[Breakpoint] = []
        self.read_seconds: deque[float] = deque(maxlen=10_000)  # each read of the run file's news (the benchmark's)
        self._message.connect(self._on_message, QUEUED)
        self._exited.connect(self._on_exited, QUEUED)

    # --- commands obeyed at once, even while user code holds the child's main thread ---
    def set_breakpoints(self, breakpoints: list[Breakpoint]) -> None:
        self._breakpoints = breakpoints
        self._tell("breakpoints", breakpoints)

    def request_stop(self, upto: int) -> None:
        self._tell("stop", upto)

    def resume(self, mode: str) -> None:
        """The paused step goes on (step_gate's INTO, OUT or OVER)."""
        self._tell("resume", mode)

    def abort(self) -> None:
        """The paused (or about to pause) step stops where it is; a load on its way too."""
        self._tell("abort")
        if self.pending is not None:
            self.pending.send("abort")

    def query_state(self, tensors: bool = False) -> None:
        """Ask the child what it holds (answered by `state`); with `tensors`, the model's weights and buffers."""
        self._tell("state", tensors)

    def end_unless_answered(self, answered: Callable[[], bool]) -> None:
        """Stop's second half: a child that has not `answered` (stopped what it was doing) within the grace
        period is terminated, then killed. Any message was once taken for the answer: a late one from the
        step before (its progress) left a step that never returns running for good."""
        child = self.current
        if child is None:
            return

        def check() -> None:
            if child is self.current and not answered() and child.process.is_alive():
                _terminate(child, "pause")

        QTimer.singleShot(GRACE_MS, check)

    def end(self) -> bool:
        """Stop: end the load on its way, else the current child, now; its exit is answered by `load_failed`
        or `died`. False when there is no process to end."""
        if self._waiting is not None:
            request, started = self._waiting
            self._waiting = None
            self.load_failed.emit(_stopped_before_start(request, started))
            return True
        child = self.pending or self.current
        if child is None or not child.process.is_alive():
            return False
        _terminate(child, "stop")
        return True

    def processes(self) -> list[multiprocessing.process.BaseProcess]:
        """The experiment processes alive or not yet reaped (the current one and a load on its way)."""
        return [c.process for c in (self.current, self.pending) if c is not None]

    def kill_all(self) -> None:
        """Quit: end every child at once, without waiting for user code."""
        self._waiting = None
        for child in (self.pending, self.current):
            if child is not None:
                child.kill()
        for child in (self.pending, self.current):
            if child is not None and child.reader is not None:
                child.reader.join(1)
        self.pending = self.current = None

    # --- commands queued behind the one in progress ---
    def load(self, request: LoadRequest) -> None:
        if self.pending is not None:
            self.pending.kill()  # a load still on its way (perhaps hanging in build()): give up on it
        started = time.monotonic()  # the loading strip counts from here, also while the fork server starts
        if not self.server.is_ready:
            self._waiting = (request, started)
            return
        self._start(request, started)

    @Slot()
    def _on_server_ready(self) -> None:
        if self._waiting is not None:
            request, started = self._waiting
            self._waiting = None
            self._start(request, started)

    def _start(self, request: LoadRequest, started: float) -> None:
        parent_end, child_end = self.context.Pipe()
        position = Position(self.context)
        log, log_path = tempfile.mkstemp(prefix="bpviz-crash-", suffix=".txt")
        os.close(log)
        process = self.context.Process(
            target=serve, args=(child_end, position, log_path), name="bpviz-experiment", daemon=True
        )
        process.start()
        child_end.close()
        child = Child(process, parent_end, position, request=request, started=started, log_path=log_path)
        child.reader = threading.Thread(target=self._read, args=(child,), name="bpviz-reader", daemon=True)
        child.reader.start()
        child.send("breakpoints", self._breakpoints)
        child.send("load", request)
        self.pending = child

    def send(self, command: str, *args) -> None:
        """One of protocol.QUEUED_COMMANDS to the current child (step, run, validate, apply_remedy, ...)."""
        self._tell(command, *args)

    # --- the channel ---
    def _tell(self, kind: str, *args) -> None:
        if self.current is not None:
            self.current.send(kind, *args)

    def _read(self, child: Child) -> None:
        """On the reader thread: every message (with the run file's news where it has some), then the exit."""
        try:
            while True:
                try:
                    kind, args = child.conn.recv()
                except (EOFError, OSError, ValueError):
                    break
                if kind == "loaded":
                    child.run_path = args[1]
                    child.playback = _open(child.run_path)
                elif kind == "rewound":
                    args = (*args, self._rewound(child, args[1]))
                elif kind in READS:
                    args = (*args, self._news(child))
                self._message.emit(child, kind, args)
            child.process.join(GRACE_MS / 1000)
            if child.log_path is not None:
                child.stack = crash_log.read(child.log_path, child.request.path if child.request else None)
            if child.ended_by != "window":
                self._exited.emit(child, self._news(child))  # a step committed but never answered: kept too
        finally:
            if isinstance(child.playback, Playback):
                child.playback.run.close()
            if child.run_path is not None:  # its writer is gone with it: the file alone holds every step again,
                # and a run the window ended on purpose (quit, reset, reload) ends there, finished
                fold_in(child.run_path, finished=child.ended_by == "window")
            if child.log_path is not None:
                Path(child.log_path).unlink(missing_ok=True)

    def _rewound(self, child: Child, branch: int) -> RunView | RunFileError | None:
        """After a rewind, the child records `branch`: read that branch's line, and the view of it now."""
        if isinstance(child.playback, Playback):
            child.playback.run.close()
        child.playback = _open(child.run_path, branch)
        if not isinstance(child.playback, Playback):
            return self._news(child)  # the error, told once
        try:
            return child.playback.live_view(Config().history_steps)
        except RunFileError as error:
            child.playback.run.close()
            child.playback = None
            return error

    def _news(self, child: Child) -> News | RunFileError | None:
        """What the child's run file gained since the last look (on the reader thread)."""
        playback = child.playback
        if not isinstance(playback, Playback):
            child.playback = None
            return playback  # the RunFileError that opening it raised (told once), or None
        started = time.perf_counter()
        try:
            new = playback.refresh()
            at = new[-1] if new else playback.last
            news = None if at is None else playback.news(new, at)
        except RunFileError as error:  # the file went bad under us: say so once, and read no more
            playback.run.close()
            child.playback = None
            return error
        self.read_seconds.append(time.perf_counter() - started)
        return news

    @Slot(object, str, object)
    def _on_message(self, child: Child, kind: str, args: tuple) -> None:
        if child is self.pending:
            if kind == "loaded":
                if self.current is not None:
                    self.current.kill()
                self.current, self.pending = child, None
            elif kind == "load_failed":
                child.kill()
                self.pending = None
            else:
                return
        elif child is not self.current:
            return  # a child given up on
        if kind == "closed":
            return
        getattr(self, kind).emit(*args)

    @Slot(object, object)
    def _on_exited(self, child: Child, news: News | RunFileError | None) -> None:
        if child is self.current:
            self.current = None
            self.died.emit(death(child), news)
        elif child is self.pending:
            self.pending = None
            self.load_failed.emit(load_death(child))


def _terminate(child: Child, why: str) -> None:
    """End `child` (SIGTERM, then SIGKILL once the grace period is over), remembering `why` for what is told."""
    child.ended_by = why
    child.process.terminate()
    QTimer.singleShot(GRACE_MS, lambda: child.process.is_alive() and child.process.kill())
