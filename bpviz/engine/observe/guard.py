"""Measurements are guests in the user's training: one that fails is noted here, never raised into it.

Every hook (forward, backward, around the optimizer step) measures inside
`catch`, so an unusual tensor costs a statistic, not the run. What failed is
kept once per message with its count, so the report can say what bpviz could
not measure and why.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from bpviz.engine.user_error import describe_exception


class MeasurementGuard:
    """Catches a failing measurement and keeps what failed, with how often."""

    def __init__(self) -> None:
        self.errors: dict[str, int] = {}  # "where: what went wrong" -> times seen

    @contextlib.contextmanager
    def catch(self, where: str) -> Iterator[None]:
        """Run a measurement; an exception from it is counted under `where` and swallowed."""
        try:
            yield
        except Exception as exc:
            self.note(f"{where}: {describe_exception(exc)}")

    def note(self, message: str) -> None:
        """Count something not measured (a failure, a call beyond what a step keeps, a forward it cannot look into)."""
        self.errors[message] = self.errors.get(message, 0) + 1
