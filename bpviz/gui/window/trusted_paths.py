"""Which experiment files the user has agreed to run: files and folders, remembered in the settings.

Plain data with no Qt and no engine in it, so any front end (the window today, a
child process or another shell later) can ask the same question the same way.
Paths are compared resolved, so a symlink or a `..` cannot slip past a decision.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

FILES_KEY = "trust/files"
FOLDERS_KEY = "trust/folders"


class PathStore(Protocol):
    """Where the lists live: bpviz.gui.window.settings.Settings, or anything with the same two methods."""

    def paths(self, key: str) -> list[Path]: ...

    def set_paths(self, key: str, paths: list[Path]) -> None: ...


class TrustedPaths:
    """Files and folders whose code may run without asking.

    `always` holds folders trusted by bpviz itself (its own samples); `trust_for_session`
    covers what the user named on the command line, trusted by that act but not remembered.
    """

    def __init__(self, store: PathStore, always: Iterable[Path] = ()) -> None:
        self._store = store
        self._always = [Path(folder).resolve() for folder in always]
        self._session: set[Path] = set()

    def is_trusted(self, path: str | Path) -> bool:
        resolved = Path(path).resolve()
        if resolved in self._session or resolved in {p.resolve() for p in self._store.paths(FILES_KEY)}:
            return True
        folders = self._always + [p.resolve() for p in self._store.paths(FOLDERS_KEY)]
        return any(resolved.is_relative_to(folder) for folder in folders)

    def trust_for_session(self, path: str | Path) -> None:
        self._session.add(Path(path).resolve())

    def trust_file(self, path: str | Path) -> None:
        self._remember(FILES_KEY, Path(path).resolve())

    def trust_folder(self, folder: str | Path) -> None:
        """Trust every file in `folder` and below, as an editor trusts a workspace."""
        self._remember(FOLDERS_KEY, Path(folder).resolve())

    def _remember(self, key: str, path: Path) -> None:
        kept = [p for p in self._store.paths(key) if p.resolve() != path]
        self._store.set_paths(key, [path, *kept])
