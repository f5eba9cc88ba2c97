"""The shape every diagnosis rule shares: it looks at one step in context and names what is wrong."""

from __future__ import annotations

from dataclasses import dataclass, field

from bpviz.engine.config import Config
from bpviz.engine.record.dead_units import DeadUnitTracker
from bpviz.engine.record.history import History
from bpviz.engine.record.records import ForwardPass, StepRecord


@dataclass
class Context:
    """What a rule may look at."""

    step: int | None  # the step the observation is about
    config: Config
    history: History
    tracker: DeadUnitTracker
    record: StepRecord | None  # None when only forwards are being judged (a validation after the last step)
    forwards: list[ForwardPass] = field(default_factory=list)
    known_kinds: frozenset[str] = frozenset()  # kinds already raised, for rules that report only a first birth


@dataclass
class Observation:
    """A condition that holds now; the diagnosis turns it into (or updates) a Finding."""

    kind: str
    severity: str
    layer: str | None
    message: str
    explanation: str
    remedies: list[str]
    rank: int | None = None  # the process it is about, for findings that compare ranks
