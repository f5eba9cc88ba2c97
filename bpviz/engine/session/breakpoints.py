"""Conditions that stop a run after the step where they first hold, the way a debugger's breakpoints do.

Breakpoints are plain data so the window can list, toggle and save them
with a file's settings (`to_dict` / `from_dict`), and `first_hit` can be
tested without threads or windows.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from bpviz.engine.diagnosis.finding import Finding, severity_rank
from bpviz.engine.record.records import StepRecord
from bpviz.engine.report.percent import percent_text

KINDS = ("nan", "finding", "dead_share", "grad_below", "grad_above", "loss_jump")


@dataclass
class Breakpoint:
    """One stop condition; `layer` None means any layer."""

    kind: str  # one of KINDS
    enabled: bool = True
    threshold: float = 0.0  # dead share (0-1), gradient-norm bound, or loss factor
    layer: str | None = None
    finding_kind: str | None = None  # for "finding": this kind only, None for any
    severity: str = "warning"  # for "finding": at least this severity

    def describe(self) -> str:
        """A short label for the breakpoints panel."""
        where = f" on {self.layer}" if self.layer else ""
        if self.kind == "nan":
            return "NaN/Inf appears"
        if self.kind == "finding":
            what = self.finding_kind or "any finding"
            return f"{what} of severity {self.severity} or worse{where}"
        if self.kind == "dead_share":
            return f"dead units above {self.threshold:.0%}{where}"
        if self.kind == "grad_below":
            return f"gradient norm below {self.threshold:g}{where}"
        if self.kind == "grad_above":
            return f"gradient norm above {self.threshold:g}{where}"
        return f"loss jumps by more than x{self.threshold:g}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Breakpoint:
        """Rebuild from saved settings; unknown keys are ignored, an unknown kind is an error."""
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        if fields.get("kind") not in KINDS:
            raise ValueError(f"unknown breakpoint kind {fields.get('kind')!r}; expected one of {', '.join(KINDS)}")
        return cls(**fields)


@dataclass(frozen=True)
class Hit:
    """Why a run stopped: which breakpoint, at which step and layer."""

    breakpoint: Breakpoint
    step: int
    layer: str | None
    reason: str


def first_hit(
    breakpoints: list[Breakpoint], record: StepRecord, previous: StepRecord | None, changed: list[Finding]
) -> Hit | None:
    """The first enabled breakpoint that `record` (with the findings it raised or changed) meets, if any."""
    for bp in breakpoints:
        if bp.enabled:
            hit = _check(bp, record, previous, changed)
            if hit is not None:
                return hit
    return None


def _check(bp: Breakpoint, record: StepRecord, previous: StepRecord | None, changed: list[Finding]) -> Hit | None:
    step = record.step
    if bp.kind == "nan":
        if previous is not None and _has_nonfinite(previous):
            return None  # stop where NaN is born, not on every step it lives on
        origin = record.nonfinite_origin or record.nonfinite_grad_origin
        if origin is not None:
            return Hit(bp, step, origin, f"NaN/Inf first appeared at {origin} in step {step}")
        if record.loss is not None and not math.isfinite(record.loss):
            return Hit(bp, step, None, f"the loss became {record.loss} at step {step}")
        return None
    if bp.kind == "finding":
        for finding in changed:
            if not finding.active or severity_rank(finding.severity) < severity_rank(bp.severity):
                continue
            if bp.finding_kind not in (None, finding.kind) or bp.layer not in (None, finding.layer):
                continue
            return Hit(bp, step, finding.layer, f"{finding.kind}: {finding.message}")
        return None
    if bp.kind == "loss_jump":
        if previous is None or record.loss is None or previous.loss is None or previous.loss <= 0:
            return None
        if record.loss > bp.threshold * previous.loss:
            return Hit(bp, step, None, f"the loss jumped from {previous.loss:.4g} to {record.loss:.4g} at step {step}")
        return None
    for layer in record.layers:
        if bp.layer not in (None, layer.name):
            continue
        if bp.kind == "dead_share" and layer.units and layer.dead_units is not None:
            share = layer.dead_units / layer.units
            if share > bp.threshold:
                return Hit(
                    bp, step, layer.name, f"{percent_text(share, 0)} of {layer.name}'s units are dead at step {step}"
                )
        if bp.kind in ("grad_below", "grad_above") and layer.grad_norm is not None:
            norm = layer.grad_norm
            if (bp.kind == "grad_below" and norm < bp.threshold) or (bp.kind == "grad_above" and norm > bp.threshold):
                side = "below" if bp.kind == "grad_below" else "above"
                message = f"the gradient norm at {layer.name} is {norm:.3g}, {side} {bp.threshold:g}"
                return Hit(bp, step, layer.name, message)
    return None


def _has_nonfinite(record: StepRecord) -> bool:
    loss_bad = record.loss is not None and not math.isfinite(record.loss)
    return bool(record.nonfinite_origin or record.nonfinite_grad_origin or loss_bad)
