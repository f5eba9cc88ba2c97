"""What a diagnosis rule reports: the unit the findings panel, the CLI and `watch().findings` share."""

from __future__ import annotations

from dataclasses import dataclass, field

SEVERITIES = ("info", "warning", "error")


@dataclass
class Finding:
    """A named problem, where it is, and since which step.

    A finding is keyed by (kind, layer): it is raised once, at the first step its
    condition held, and later steps update it (severity only rises) instead of
    repeating it, so a list of findings reads as "what is wrong, since when". One
    that stopped holding and holds again (units revived, then dead again) holds
    since that step, at the severity it has then.
    """

    kind: str
    severity: str  # "info" | "warning" | "error"
    layer: str | None
    step: int | None  # first step the condition held (since it last began to hold)
    message: str
    explanation: str = ""
    remedies: list[str] = field(default_factory=list)
    last_step: int | None = None  # latest step the condition held
    active: bool = True  # whether it held at the latest step examined
    rank: int | None = None  # the torch.distributed rank it is about (rank_divergence), None for the whole job

    @property
    def key(self) -> tuple[str, str | None]:
        return (self.kind, self.layer)

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "layer": self.layer,
            "step": self.step,
            "message": self.message,
            "explanation": self.explanation,
            "remedies": list(self.remedies),
            "last_step": self.last_step,
            "active": self.active,
            "rank": self.rank,
        }


def severity_rank(severity: str) -> int:
    """Order severities so that the worst sorts last (info < warning < error)."""
    return SEVERITIES.index(severity)


def worst_first(findings) -> list[Finding]:
    """The order findings are listed in everywhere: worst severity first, then earliest, then by kind."""
    return sorted(findings, key=lambda f: (-severity_rank(f.severity), f.step or 0, f.kind))
