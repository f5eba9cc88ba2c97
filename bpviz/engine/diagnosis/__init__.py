"""Findings from step records: one small rule per kind, merged so each problem is reported once, since when."""

from __future__ import annotations

from bpviz.engine.config import Config
from bpviz.engine.diagnosis import (
    dead_relu,
    exploding_gradient,
    grad_scaler_skip,
    inactive_units,
    modes,
    nan_or_inf,
    rank_divergence,
    saturated_activation,
    softmax_cross_entropy,
    vanishing_gradient,
)
from bpviz.engine.diagnosis.finding import Finding, severity_rank, worst_first
from bpviz.engine.diagnosis.rule import Context, Observation
from bpviz.engine.record.dead_units import DeadUnitTracker
from bpviz.engine.record.history import History
from bpviz.engine.record.records import ForwardPass, StepRecord

RULES = (
    nan_or_inf,
    grad_scaler_skip,
    dead_relu,
    inactive_units,
    vanishing_gradient,
    exploding_gradient,
    saturated_activation,
    modes,
    softmax_cross_entropy,
    rank_divergence,
)
KINDS = tuple(kind for rule in RULES for kind in rule.KINDS)  # every kind a finding can have


class Diagnosis:
    """Runs the rules after each step and keeps one Finding per (kind, layer)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._findings: dict[tuple[str, str | None], Finding] = {}

    @property
    def findings(self) -> list[Finding]:
        """Worst first, then earliest."""
        return worst_first(self._findings.values())

    def add(self, finding: Finding) -> None:
        """Keep a finding raised outside the rules (the recording stopped), listed with the others."""
        self._findings[finding.key] = finding

    def judge_step(self, record: StepRecord, history: History, tracker: DeadUnitTracker) -> list[Finding]:
        """Run every rule on a finished step; return the findings raised or changed by it."""
        ctx = self._context(record.step, history, tracker, record, record.forwards)
        changed = []
        held = set()
        for rule in RULES:
            for obs in rule.check(ctx):
                held.add((obs.kind, obs.layer))
                finding = self._merge(obs, record.step)
                if finding is not None:
                    changed.append(finding)
            if rule.STATEFUL:
                for finding in self._findings.values():
                    if finding.kind in rule.KINDS and finding.key not in held and finding.active:
                        finding.active = False
                        changed.append(finding)
        return changed

    def judge_forwards(
        self, forwards: list[ForwardPass], step: int | None, history: History, tracker: DeadUnitTracker
    ) -> list[Finding]:
        """Judge forwards outside a step (a validation after the last step) for mode problems."""
        ctx = self._context(step, history, tracker, None, forwards)
        return [f for obs in modes.check(ctx) if (f := self._merge(obs, step)) is not None]

    def _context(self, step, history, tracker, record, forwards) -> Context:
        kinds = frozenset(kind for kind, _ in self._findings)
        return Context(step, self.config, history, tracker, record, list(forwards), kinds)

    def _merge(self, obs: Observation, step: int | None) -> Finding | None:
        key = (obs.kind, obs.layer)
        finding = self._findings.get(key)
        if finding is None:
            finding = Finding(
                obs.kind,
                obs.severity,
                obs.layer,
                step,
                obs.message,
                obs.explanation,
                list(obs.remedies),
                step,
                rank=obs.rank,
            )
            self._findings[key] = finding
            return finding
        before = (finding.severity, finding.message, finding.active, finding.remedies, finding.step)
        if not finding.active:  # it had stopped holding (units revived, then died again): it holds since now
            finding.step = step
            finding.severity = obs.severity
        elif severity_rank(obs.severity) > severity_rank(finding.severity):
            finding.severity = obs.severity
        finding.message = obs.message
        finding.rank = obs.rank
        finding.explanation = obs.explanation
        finding.remedies = list(obs.remedies)  # the evidence may have changed what to try first
        finding.last_step = step
        finding.active = True
        after = (finding.severity, finding.message, finding.active, finding.remedies, finding.step)
        return finding if after != before else None
