"""Writing the JSON report so that a reader never sees half of one: a temporary file beside it, fsync, rename.

A full disk, a quota or a crash mid-write then leaves the previous report as it
was instead of truncated JSON that a CI step would choke on. Targets that are not
regular files (/dev/stdout, a FIFO) cannot be renamed over and are written directly.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


class ReportWriteError(Exception):
    """The report could not be written; the message says where, why, and what was left there."""


def write_report(path: Path, report: dict) -> None:
    """Write `report` as indented JSON to `path` atomically; raise ReportWriteError saying what happened."""
    text = json.dumps(report, indent=2) + "\n"
    target = path.resolve() if path.is_symlink() else path  # replace the file a link points at, not the link
    try:
        if target.exists() and not target.is_file():
            if target.is_dir():
                raise IsADirectoryError(21, "Is a directory")
            with open(target, "w", encoding="utf-8") as stream:  # a device or a pipe: no file to replace
                stream.write(text)
            return
        _replace_atomically(target, text)
    except OSError as error:
        kept = " (the previous report there is left as it was)" if target.is_file() else ""
        raise ReportWriteError(f"cannot write the report to {path}: {error.strerror or error}{kept}") from error


def _replace_atomically(target: Path, text: str) -> None:
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, _mode_for(target))
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _mode_for(target: Path) -> int:
    """The old file's permissions, or what a plain open() would give (mkstemp makes 0600 files)."""
    try:
        return target.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
