"""What the window remembers between runs: geometry, splitter positions, recent files.

All of it goes through one QSettings object handed in by the caller, so tests
point it at a throwaway ini file and never touch the user's real settings.

Settings are data, never code. PySide6 stores any other Python object as a pickle
(`@Variant(...PySide::PyObjectWrapper...)`) and unpickles it as soon as QSettings
parses the file, before a value is even asked for: a crafted settings file would
run code when the window starts. So only plain strings, numbers and Qt byte blobs
are stored (lists as JSON text), and the file's raw text is checked before QSettings
reads it: a `@Variant(` value, which bpviz never writes, is moved out of the file
into `<file>.refused` (kept, not lost) and never deserialized.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, QStandardPaths

MAX_RECENT = 10
PICKLED_MARK = b"@Variant("  # how QSettings writes a serialized QVariant: a pickle for a Python object
_PLAIN = (str, int, float, bool, QByteArray)  # what bpviz stores: QSettings writes these as text


def default_settings() -> QSettings:
    """The user's settings store, checked before it is read: ~/.config/bpviz/bpviz.conf (or the platform's equivalent).

    That is where QSettings("bpviz", "bpviz") keeps it on Linux; it is named explicitly, as an ini file on every
    platform, because the file must be checked as text before QSettings parses it (which it does on construction).
    """
    folder = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.GenericConfigLocation)
    return ini_settings(Path(folder) / "bpviz" / "bpviz.conf")


def ini_settings(path: str | Path) -> QSettings:
    """A settings store in one ini file, its pickled values refused first (see refuse_pickled_values)."""
    refuse_pickled_values(Path(path))
    return QSettings(str(path), QSettings.Format.IniFormat)


class Settings:
    """Typed access to the few values bpviz keeps; plain values only (see the module's docstring)."""

    def __init__(self, store: QSettings | None = None) -> None:
        self.store = store if store is not None else default_settings()  # made by ini_settings: checked first

    # --- plain values ---
    def value(self, key: str, default=None):
        """The value under `key` when it is a plain one, else `default`."""
        value = self.store.value(key, default)
        return value if isinstance(value, _PLAIN) else default

    def set_value(self, key: str, value) -> None:
        """Store a plain value; anything else would be pickled into the file, so it is refused."""
        if not isinstance(value, _PLAIN):
            raise TypeError(f"settings hold strings, numbers and QByteArray only, not {type(value).__name__}")
        self.store.setValue(key, value)

    def paths(self, key: str) -> list[Path]:
        """A list of paths kept as JSON text (older versions kept a QSettings string list: read that too)."""
        raw = self.store.value(key, "")
        if isinstance(raw, str) and raw.startswith("["):
            try:
                raw = json.loads(raw)
            except ValueError:
                raw = []
        elif isinstance(raw, str):  # a one-element string list, as QSettings reads it back from an ini file
            raw = [raw]
        if not isinstance(raw, list):
            return []
        return [Path(p) for p in raw if isinstance(p, str) and p]

    def set_paths(self, key: str, paths: list[Path]) -> None:
        self.set_value(key, json.dumps([str(p) for p in paths]))
        self.store.sync()

    # --- recent files ---
    def recent_files(self) -> list[Path]:
        """Recently opened files, newest first, dropping the ones that no longer exist."""
        return [p for p in self.paths("recent/files") if p.exists()]

    def add_recent(self, path: str | Path) -> list[Path]:
        """Put `path` first in the recent list (once) and return the new list."""
        resolved = Path(path).resolve()
        paths = [resolved] + [p for p in self.recent_files() if p.resolve() != resolved]
        paths = paths[:MAX_RECENT]
        self.set_paths("recent/files", paths)
        return paths

    def clear_recent(self) -> None:
        self.set_paths("recent/files", [])

    def last_directory(self) -> str:
        """The folder the last Open… dialog ended in."""
        value = self.value("recent/directory", "")
        return value if isinstance(value, str) else ""

    def set_last_directory(self, directory: str | Path) -> None:
        self.set_value("recent/directory", str(directory))

    # --- geometry and layout ---
    def save_bytes(self, key: str, value: QByteArray) -> None:
        """Store a Qt state blob (saveGeometry, saveState) under `layout/<key>`."""
        self.set_value(f"layout/{key}", value)

    def load_bytes(self, key: str) -> QByteArray | None:
        """The blob stored under `layout/<key>`, or None when there is none."""
        value = self.value(f"layout/{key}")
        if isinstance(value, QByteArray) and not value.isEmpty():
            return value
        return None

    def layout_compact(self) -> bool | None:
        """Whether the saved dock and splitter state is of the compact arrangement (None: nothing saved)."""
        value = self.store.value("layout/compact")
        return None if value is None else str(value).lower() in ("true", "1")

    def set_layout_compact(self, compact: bool) -> None:
        self.store.setValue("layout/compact", bool(compact))

    def sync(self) -> None:
        self.store.sync()

    # --- per-file settings ---
    def file_value(self, path: str | Path, key: str, default=None):
        """A value kept for one experiment file (breakpoints, …), keyed by its resolved path."""
        return self.value(f"{_file_group(path)}/{key}", default)

    def set_file_value(self, path: str | Path, key: str, value) -> None:
        self.set_value(f"{_file_group(path)}/{key}", value)
        self.store.sync()


def refuse_pickled_values(path: Path) -> list[str]:
    """Move every serialized-object value out of the ini file at `path` before QSettings parses it.

    Returns the keys refused (empty when the file is clean or absent). The refused lines are appended
    to `<path>.refused`, so nothing the user had is lost, and a warning names them on stderr.
    """
    try:
        raw = path.read_bytes()
    except OSError:
        return []
    if PICKLED_MARK not in raw:
        return []
    kept, refused, section = [], [], b""
    for line in raw.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith(b"[") and stripped.endswith(b"]"):
            section = stripped[1:-1]
        if PICKLED_MARK in line:
            refused.append((section, line))
        else:
            kept.append(line)
    with open(path.with_name(path.name + ".refused"), "ab") as aside:
        aside.writelines(
            f"[{s.decode('utf-8', 'replace')}]\n".encode() + line.rstrip(b"\r\n") + b"\n" for s, line in refused
        )
    path.write_bytes(b"".join(kept))
    keys = [_key_name(section, line) for section, line in refused]
    print(
        f"bpviz: ignored {len(keys)} setting(s) in {path} that hold pickled Python objects ({', '.join(keys)}): "
        f"bpviz never writes those, and reading them would run code. They were moved to {path.name}.refused.",
        file=sys.stderr,
    )
    return keys


def _key_name(section: bytes, line: bytes) -> str:
    """`files/0123/breakpoints` from section `files` and line `0123\\breakpoints=...` (how ini files nest keys)."""
    key = line.split(b"=", 1)[0].strip().decode("utf-8", "replace").replace("\\", "/")
    return f"{section.decode('utf-8', 'replace')}/{key}"


def _file_group(path: str | Path) -> str:
    """A settings group per file: the path itself cannot be a key (slashes nest groups), its hash can."""
    digest = hashlib.sha1(str(Path(path).resolve()).encode("utf-8")).hexdigest()[:16]
    return f"files/{digest}"
