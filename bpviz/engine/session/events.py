"""What a run tells whoever watches it, and the watcher's copy of the run built only from those messages.

The training side (a thread in the window today, a child process later)
owns the run; a viewer never writes run state itself. It applies these
events, in the order they were sent, to a `RunView`, so the window shows
exactly what the engine decided (which step a validation belongs to, what
an intervention is called) and nothing the engine did not send.
Events are snapshots: the engine keeps changing its own findings after
sending them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from bpviz.engine.diagnosis.finding import Finding
from bpviz.engine.record.history import History
from bpviz.engine.record.records import StepRecord


def snapshot(findings: list[Finding]) -> list[Finding]:
    """Copies of `findings` that later steps on the training side do not change."""
    return [dataclasses.replace(f, remedies=list(f.remedies)) for f in findings]


@dataclass(frozen=True)
class StepRecorded:
    """A training step finished: its record and every finding so far."""

    record: StepRecord
    findings: list[Finding]


@dataclass(frozen=True)
class Validated:
    """A validation ran after step `step` (-1: before any step); `kept` when History keeps it as a point."""

    step: int
    metrics: dict[str, float]
    findings: list[Finding]
    kept: bool


@dataclass(frozen=True)
class Intervened:
    """A remedy (or its undo) acts from step `step` on."""

    step: int
    label: str


@dataclass(frozen=True)
class Rewound:
    """The run went back to the end of `step` and trains on from there as `branch`; later steps are not its own."""

    step: int
    branch: int
    findings: list[Finding]


RunEvent = StepRecorded | Validated | Intervened | Rewound


class RunView:
    """One run as a viewer sees it: the History and findings the events describe, never written otherwise."""

    def __init__(self, max_steps: int) -> None:
        self.history = History(max_steps)
        self.findings: list[Finding] = []

    def apply(self, event: RunEvent) -> None:
        """Take one event in (the engine's own History took the same change when it was sent)."""
        if isinstance(event, StepRecorded):
            self.history.append(event.record)
            self.findings = event.findings
        elif isinstance(event, Validated):
            if event.kept:
                self.history.add_validation(event.step, event.metrics)
            self.findings = event.findings
        elif isinstance(event, Intervened):
            self.history.interventions.append((event.step, event.label))
        elif isinstance(event, Rewound):
            self.history = self.history.before(event.step + 1)
            self.findings = event.findings
        else:
            raise TypeError(f"not a run event: {event!r}")
