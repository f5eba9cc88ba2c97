"""Writes a run file on a background thread, one transaction per step, so training never waits on the disk.

The file is created exclusively (an existing file is never overwritten) and
locked with `flock` for as long as the writer lives: a second writer is
refused, and a reader can tell a live recording from one whose writer has
stopped (the lock goes with the process, also on kill -9). SQLite in WAL
mode with `synchronous=NORMAL` makes every committed step survive a crash
of the process; a step still queued or in flight is what a kill loses.
A failing disk (full, or made read-only) stops the recording, never the
training: the failure is kept for the caller to report once.
"""

from __future__ import annotations

import atexit
import errno
import fcntl
import os
import queue
import sqlite3
import threading
import weakref
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from bpviz.engine.runs import schema
from bpviz.engine.runs.errors import RunFileError
from bpviz.engine.runs.rows import RowWriter

SUFFIX = ".bpviz"
_OPEN_WRITERS: weakref.WeakValueDictionary[tuple[int, int], RunWriter] = weakref.WeakValueDictionary()
_STOP = object()

Job = Callable[[RowWriter], None]


def target_path(path: str | Path) -> Path:
    """The file to create: `path`, or for a folder (existing, or named with a trailing slash) a new dated file in it."""
    text = str(path)
    path = Path(path).expanduser()
    if not (path.is_dir() or text.endswith(("/", os.sep))):
        return path
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    candidate, n = path / f"{stamp}{SUFFIX}", 2
    while candidate.exists():
        candidate, n = path / f"{stamp}-{n}{SUFFIX}", n + 1
    return candidate


def writer_in_this_process(path: Path) -> bool:
    """Whether this process is recording into `path` (probing its lock from here would break SQLite's own locks)."""
    try:
        stat = path.stat()
    except OSError:
        return False
    return (stat.st_dev, stat.st_ino) in _OPEN_WRITERS


class RunWriter:
    """One run file being recorded; `submit` queues a step's writing, `close` waits for the queue to drain."""

    def __init__(self, path: str | Path, meta: dict[str, str]) -> None:
        self.path = target_path(path)
        self.failure: tuple[int | None, str] | None = None  # (step, why) once the recording stopped
        self._lock_fd = _create_locked(self.path)
        try:
            self._conn = _initialise(self.path, meta)
        except BaseException:
            os.close(self._lock_fd)
            raise
        stat = os.fstat(self._lock_fd)
        _OPEN_WRITERS[(stat.st_dev, stat.st_ino)] = self
        self._rows = RowWriter(self._conn)
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._work, name=f"bpviz recorder {self.path.name}", daemon=True)
        self._closed = False
        self._thread.start()
        atexit.register(_close_at_exit, weakref.ref(self))

    def submit(self, step: int | None, job: Job) -> None:
        """Run `job` on the writer thread inside one transaction; `step` names it if it fails."""
        if not self._closed and self.failure is None:
            self._queue.put((step, job))

    def flush(self) -> None:
        """Wait until everything submitted so far is committed (or the recording has failed)."""
        done = threading.Event()
        self._queue.put((None, lambda rows: done.set()))
        while not done.wait(0.05):
            if not self._thread.is_alive() or self.failure is not None:  # a failed writer skips every job
                return

    def close(self, status: str = "finished") -> None:
        """Finish the file: drain the queue, mark its status, fold the WAL back into one self-contained file, unlock."""
        if self._closed:
            return
        self._closed = True
        self._queue.put((None, _STOP))
        self._thread.join()
        try:
            if self.failure is None:
                with self._conn:
                    set_meta(self._conn, {"status": status, "finished": _now()})
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._conn.execute("PRAGMA journal_mode=DELETE")
        except (sqlite3.Error, OSError):
            pass  # the steps already committed stay readable from the WAL
        finally:
            self._conn.close()
            stat = os.fstat(self._lock_fd)
            _OPEN_WRITERS.pop((stat.st_dev, stat.st_ino), None)
            os.close(self._lock_fd)

    def _work(self) -> None:
        while True:
            step, job = self._queue.get()
            if job is _STOP:
                return
            if self.failure is not None:
                continue
            try:
                with self._conn:
                    job(self._rows)
            except (sqlite3.Error, OSError) as error:
                self.failure = (step, _describe(error, self.path))
            except Exception as error:  # a value bpviz cannot store: stop recording, never raise into training
                why = f"bpviz could not encode the step ({type(error).__name__}: {error}); please report this"
                self.failure = (step, why)


def fold_in(path: Path, finished: bool = False) -> bool:
    """Fold the write-ahead log of a run whose writer is gone (killed, crashed) back into the file; True when done.

    SQLite keeps a run's latest commits in `NAME.bpviz-wal` until a checkpoint, which a writer that
    finishes makes (RunWriter.close); one killed leaves them there. Any reader sees them, but the file
    copied alone, the way people move files, lacked them: 1,164 of 1,193 steps of a run the window
    recorded and then reset. Nothing happens while a writer holds the file.

    `finished`: the writer's process was ended on purpose where the run was to end (the window quit, or
    reset or reloaded the experiment), so the run is marked finished, as its writer would have: left
    unmarked, every run the window recorded read as cut short by a crash or a kill.
    """
    if not finished and not Path(f"{path}-wal").exists():
        return False
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # taken: no writer holds it, and none can start meanwhile
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            if finished and schema.is_run(conn):
                with conn:
                    set_meta(conn, {"status": "finished", "finished": _now()})
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return conn.execute("PRAGMA journal_mode=DELETE").fetchone()[0] == "delete"
        finally:
            conn.close()
    except (OSError, sqlite3.Error):
        return False  # a writer lives, or the folder is read-only: the log stays, and readers still see it
    finally:
        os.close(fd)


def set_meta(conn: sqlite3.Connection, values: dict[str, str | None]) -> None:
    conn.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", list(values.items()))


def _create_locked(path: Path) -> int:
    """Create `path` (never over an existing file) and hold an exclusive flock on it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise RunFileError(
            "cannot record: the run file already exists",
            path,
            "a run file is never overwritten" + (" (and another process is recording into it)" * _locked(path)),
            "give a new file name, or a folder (ending in /) to get a new dated file in it",
        ) from None
    except OSError as error:
        raise RunFileError(
            "cannot record: the run file cannot be created",
            path,
            error.strerror or str(error),
            "record into a folder you can write to",
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise RunFileError(
            "cannot record: another process holds the run file", path, "its lock is taken", "record into another file"
        ) from None
    return fd


def _locked(path: Path) -> bool:
    """Whether a live writer holds `path` (from this process, asked without opening it: see writer_in_this_process)."""
    if writer_in_this_process(path):
        return True
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def _initialise(path: Path, meta: dict[str, str]) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.isolation_level = "DEFERRED"
        with conn:
            schema.create(conn)
            set_meta(
                conn,
                {
                    "format_version": str(schema.FORMAT_VERSION),
                    "created": _now(),
                    "status": "recording",
                    "writer_pid": str(os.getpid()),
                    **meta,
                },
            )
        return conn
    except (sqlite3.Error, OSError) as error:
        raise RunFileError(
            "cannot record: the run file cannot be set up",
            path,
            _describe(error, path),
            "record into a folder on a local disk with free space",
        ) from None


def _describe(error: BaseException, path: Path) -> str:
    """Why a write failed, in words: SQLite's codes, not its terse messages, say which it was."""
    code = getattr(error, "sqlite_errorname", "")
    text = f"{error} ({code})" if code else str(error)
    if code == "SQLITE_FULL" or getattr(error, "errno", None) == errno.ENOSPC:
        return f"the disk is full: {text}"
    if code.startswith("SQLITE_READONLY") or isinstance(error, PermissionError):
        return f"the file or its folder became read-only: {text}"
    if code.startswith("SQLITE_IOERR"):
        return f"the disk refused a write (full, read-only, or over a size limit): {text}"
    return text


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def _close_at_exit(ref: weakref.ref[RunWriter]) -> None:
    writer = ref()
    if writer is not None:
        writer.close(status="finished")
