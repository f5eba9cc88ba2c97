"""What the window remembers between runs: geometry, splitter positions, recent files.

All of it goes through one QSettings object handed in by the caller, so tests
point it at a throwaway ini file and never touch the user's real settings.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

MAX_RECENT = 10


def default_settings() -> QSettings:
    """The user's settings store (platform native, organisation and application 'bpviz')."""
    return QSettings("bpviz", "bpviz")


def ini_settings(path: str | Path) -> QSettings:
    """A settings store in one ini file: for tests and for throwaway sessions."""
    return QSettings(str(path), QSettings.Format.IniFormat)


class Settings:
    """Typed access to the few values bpviz keeps."""

    def __init__(self, store: QSettings | None = None) -> None:
        self.store = store if store is not None else default_settings()

    # --- recent files ---
    def recent_files(self) -> list[Path]:
        """Recently opened files, newest first, dropping the ones that no longer exist."""
        raw = self.store.value("recent/files", [])
        if isinstance(raw, str):  # QSettings gives a bare string for a one-element list in ini files
            raw = [raw]
        paths = [Path(p) for p in (raw or []) if p]
        return [p for p in paths if p.exists()]

    def add_recent(self, path: str | Path) -> list[Path]:
        """Put `path` first in the recent list (once) and return the new list."""
        resolved = Path(path).resolve()
        paths = [resolved] + [p for p in self.recent_files() if p.resolve() != resolved]
        paths = paths[:MAX_RECENT]
        self.store.setValue("recent/files", [str(p) for p in paths])
        self.store.sync()
        return paths

    def clear_recent(self) -> None:
        self.store.setValue("recent/files", [])
        self.store.sync()

    def last_directory(self) -> str:
        """The folder the last Open… dialog ended in."""
        return str(self.store.value("recent/directory", "") or "")

    def set_last_directory(self, directory: str | Path) -> None:
        self.store.setValue("recent/directory", str(directory))

    # --- geometry and layout ---
    def save_bytes(self, key: str, value: QByteArray) -> None:
        """Store a Qt state blob (saveGeometry, saveState) under `layout/<key>`."""
        self.store.setValue(f"layout/{key}", value)

    def load_bytes(self, key: str) -> QByteArray | None:
        """The blob stored under `layout/<key>`, or None when there is none."""
        value = self.store.value(f"layout/{key}")
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
        return self.store.value(f"{_file_group(path)}/{key}", default)

    def set_file_value(self, path: str | Path, key: str, value) -> None:
        self.store.setValue(f"{_file_group(path)}/{key}", value)
        self.store.sync()


def _file_group(path: str | Path) -> str:
    """A settings group per file: the path itself cannot be a key (slashes nest groups), its hash can."""
    digest = hashlib.sha1(str(Path(path).resolve()).encode("utf-8")).hexdigest()[:16]
    return f"files/{digest}"
