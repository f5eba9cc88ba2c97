"""Failures in a user's file or model, told the way a person needs them: what, where, why.

Every consumer (the CLI's exit 2, the window's error panel) shows the same
few lines; the traceback is kept in `details` for whoever asks for it.
"""

from __future__ import annotations

import traceback
from pathlib import Path

# How user code can end besides returning: an exception, sys.exit() (SystemExit; argparse raises it too), or a
# KeyboardInterrupt it raised itself. bpviz's own interruptions (a signal, a timeout) are a different class
# (see bpviz.engine.session.interrupt), so they pass through every handler written with this tuple.
USER_CODE_ENDINGS: tuple[type[BaseException], ...] = (Exception, SystemExit, KeyboardInterrupt)


class UserCodeError(Exception):
    """A failure caused by user code or a user file, never by bpviz itself."""

    def __init__(
        self,
        what: str,
        why: str,
        where: str | None = None,
        layer: str | None = None,
        details: str = "",
        layer_type: str | None = None,
    ) -> None:
        super().__init__(what)
        self.what = what  # "build() raised", "forward failed at step 3"
        self.why = why  # the exception's type and message
        self.where = where  # "path/to/file.py:42" or None when unknown
        self.layer = layer  # the layer the failure came from, when inside forward/backward
        self.layer_type = layer_type  # its module class or function ("Linear"), which a bare index does not say
        self.details = details  # the full traceback

    def __reduce__(self):
        """Pickle by fields, as a plain UserCodeError: it crosses from the experiment process to the window."""
        return (UserCodeError, (self.what, self.why, self.where, self.layer, self.details, self.layer_type))

    def summary(self) -> str:
        """The few lines a person reads first."""
        lines = [self.what]
        if self.where:
            lines.append(f"  where: {self.where}")
        if self.layer:
            kind = f" ({self.layer_type})" if self.layer_type and self.layer_type != self.layer else ""
            lines.append(f"  layer: {self.layer}{kind}")
        lines.append(f"  why:   {self.why}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def describe_exception(exc: BaseException) -> str:
    """`TypeName: message`, the way Python prints the last traceback line."""
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


def locate(exc: BaseException, prefer: str | Path | None = None) -> str | None:
    """`file:line` of the innermost frame in `prefer` (the user's file), else of the innermost frame outside torch."""
    frames = traceback.extract_tb(exc.__traceback__)
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}"
    if prefer is not None:
        wanted = str(Path(prefer).resolve())
        for frame in reversed(frames):
            if str(Path(frame.filename).resolve()) == wanted:
                return f"{frame.filename}:{frame.lineno}"
    for frame in reversed(frames):
        if "/torch/" not in frame.filename and "/bpviz/" not in frame.filename:
            return f"{frame.filename}:{frame.lineno}"
    return None


def full_traceback(exc: BaseException) -> str:
    """The whole traceback, for --verbose and the window's details pane."""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def user_code_failed(
    exc: BaseException,
    what: str,
    actor: str,
    source: str | Path | None = None,
    layer: str | None = None,
    layer_type: str | None = None,
) -> UserCodeError:
    """Classify how user code ended, as the UserCodeError everyone shows.

    `what` says what failed for an ordinary exception ("the forward pass failed at step 3"); `actor` names the
    code that ran ("build()"), for the case where it tried to end the process with sys.exit(): that is the
    file's doing, not bpviz finishing cleanly, so it is told as such, at the line that called it.
    """
    where = locate(exc, prefer=source)
    if isinstance(exc, SystemExit):
        at = f" at {_short(where)}" if where else ""
        return UserCodeError(
            f"{actor} called sys.exit({exc.code!r}){at}",
            why=_exit_reason(exc),
            where=where,
            details=full_traceback(exc),
        )
    return UserCodeError(what, describe_exception(exc), where, layer, full_traceback(exc), layer_type)


def _exit_reason(exc: SystemExit) -> str:
    """Why a SystemExit came, in the words a user can act on."""
    frames = traceback.extract_tb(exc.__traceback__)
    if any(Path(frame.filename).name == "argparse.py" for frame in frames):
        return (
            "argparse in the file rejected its command line (it sees only the file's path, as `python FILE` "
            "would): give every option a default, or read settings from the environment"
        )
    return "user code may not end bpviz's process: return from it or raise an exception instead"


def _short(where: str) -> str:
    """`name.py:12` from `/long/path/name.py:12`, for a one-line message (the full path follows under where:)."""
    path, _, line = where.rpartition(":")
    return f"{Path(path).name}:{line}" if path else where
