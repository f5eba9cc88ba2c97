"""bpviz's own cost per step, measured on the host clock, so a user can see what watching costs.

The hooks add their time to the step's PendingStep; the collection is timed
here and stopped just before the record is made, so the record carries its
own cost. What the Watcher does after that (marking dead units, judging) is
counted with the next step, so nothing bpviz spends is left out of the sum.
"""

from __future__ import annotations

import time


class StepClock:
    """Times one step's share of bpviz: the hooks' seconds plus everything since `started`."""

    def __init__(self, hook_seconds: float, started: float, previous: float | None) -> None:
        self.hook_seconds = hook_seconds
        self.started = started
        self.previous = previous  # when the previous step's record was made (or watching began)
        self.stopped: float | None = None

    def stop(self) -> tuple[float, float | None]:
        """(bpviz's seconds on this step, the step's wall seconds since the previous record)."""
        self.stopped = time.perf_counter()
        step = self.stopped - self.previous if self.previous is not None else None
        return self.hook_seconds + (self.stopped - self.started), step
