"""What the stepper tells its driver about a step's neighbours, and the view a window draws a run from.

The experiment process's driver (engine/session/driver.py) answers the
window with these small facts: which step a validation belongs to and what
an intervention is called. The steps themselves, their findings and marks
reach the window through the run file (engine/runs/playback.py), which
fills the `RunView` it draws.
"""

from __future__ import annotations

from dataclasses import dataclass

from bpviz.engine.diagnosis.finding import Finding
from bpviz.engine.record.history import History


@dataclass(frozen=True)
class Validated:
    """A validation ran after step `step` (-1: before any step); `kept` when History keeps it as a point."""

    step: int
    metrics: dict[str, float]
    kept: bool


@dataclass(frozen=True)
class Intervened:
    """A remedy (or its undo) acts from step `step` on."""

    step: int
    label: str


class RunView:
    """One run as a viewer sees it: the History and findings read from its run file, never written otherwise."""

    def __init__(self, max_steps: int) -> None:
        self.history = History(max_steps)
        self.findings: list[Finding] = []
