"""Measurements are guests in the user's training: one that fails is noted here, never raised into it.

Every hook (forward, backward, around the optimizer step) measures inside
`catch`, so an unusual tensor costs a statistic, not the run. What failed is
kept once per message with its count, so the report can say what bpviz could
not measure and why.
"""

from __future__ import annotations

from bpviz.engine.user_error import describe_exception


class MeasurementGuard:
    """Catches a failing measurement and keeps what failed, with how often."""

    def __init__(self) -> None:
        self.errors: dict[str, int] = {}  # "where: what went wrong" -> times seen

    def catch(self, where: str) -> _Catching:
        """Run a measurement; an exception from it is counted under `where` and swallowed."""
        return _Catching(self, where)

    def note(self, message: str) -> None:
        """Count something not measured (a failure, a call beyond what a step keeps, a forward it cannot look into)."""
        self.errors[message] = self.errors.get(message, 0) + 1


class _Catching:
    """`MeasurementGuard.catch`'s context: a class rather than a generator, since every hook enters one for each
    layer and a generator's context costs three times as much."""

    __slots__ = ("_guard", "_where")

    def __init__(self, guard: MeasurementGuard, where: str) -> None:
        self._guard, self._where = guard, where

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, trace) -> bool:
        if isinstance(exc, Exception):  # not KeyboardInterrupt or SystemExit: those are the user's
            self._guard.note(f"{self._where}: {describe_exception(exc)}")
            return True
        return False
