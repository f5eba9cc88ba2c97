"""Keeping a run where the user wants it: a consistent copy made with SQLite's backup API, put in place atomically.

A plain file copy of a run being written can catch a half-written page or
miss what is still in its WAL; the backup API copies one consistent
snapshot, even while the writer goes on. The copy is written next to its
destination and renamed over it, so the destination is either the old file
or the whole new one, never a part.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

from bpviz.engine.runs.errors import RunFileError


def save_copy(source: str | Path, destination: str | Path) -> Path:
    """Copy the run file `source` to `destination` (RunFileError, in words, when it cannot); the path written."""
    source, destination = Path(source), Path(destination)
    if source.resolve() == destination.resolve():
        return destination
    partial = destination.with_name(f".{destination.name}.part")
    try:
        src = sqlite3.connect(f"file:{quote(str(source.resolve()))}?mode=ro", uri=True)
        try:
            dst = sqlite3.connect(partial)
            try:
                src.backup(dst)
            finally:
                dst.close()
        finally:
            src.close()
        os.replace(partial, destination)
    except (sqlite3.Error, OSError) as error:
        partial.unlink(missing_ok=True)
        raise RunFileError(
            "could not save the run", destination, str(error), "choose a folder you can write to with enough free space"
        ) from None
    return destination
