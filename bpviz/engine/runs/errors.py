"""A run file that cannot be written or read, told as: what, which file, why, what to do."""

from __future__ import annotations

from pathlib import Path

from bpviz.engine.user_error import UserCodeError


class RunFileError(UserCodeError):
    """A run file problem; the CLI prints `summary()` and exits 2, the window shows it in its error panel."""

    def __init__(self, what: str, path: str | Path, why: str, todo: str) -> None:
        super().__init__(what=what, why=why, where=str(path))
        self.path = Path(path)
        self.todo = todo

    def summary(self) -> str:
        return f"{self.what}\n  file:  {self.where}\n  why:   {self.why}\n  do:    {self.todo}"
