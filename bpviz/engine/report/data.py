"""The report dict shared by `bpviz check --json` and `watch().report()`: plain JSON-safe data, version 1."""

from __future__ import annotations

import math

from bpviz.engine.diagnosis.finding import Finding
from bpviz.engine.record.history import History
from bpviz.engine.record.records import LayerStep

REPORT_VERSION = 1
_LAYER_FIELDS = (
    "type",
    "family",
    "units",
    "dead_units",
    "zero_fraction",
    "mean",
    "std",
    "min",
    "max",
    "saturated_fraction",
    "nonfinite",
    "grad_norm",
    "param_grad_norm",
    "weight_norm",
    "update_ratio",
)


def build_report(
    history: History,
    findings: list[Finding],
    steps: int,
    unmeasured: list[str] | None = None,
    cost: dict | None = None,
) -> dict:
    """Latest per-layer state, the loss curve and the findings. Non-finite numbers become null (JSON has no NaN).

    `unmeasured` lists what bpviz failed to measure (a layer or the optimizer step, and why), so a
    missing statistic is never mistaken for a healthy one. `cost` says what watching cost.
    """
    latest = history.latest
    return {
        "version": REPORT_VERSION,
        "steps": steps,
        "loss": [_json_float(v) for v in history.losses],
        "layers": [layer_entry(layer) for layer in (latest.layers if latest else [])],
        "findings": [finding.to_dict() for finding in findings],
        "validation": [
            {"step": step, "metrics": {k: _json_float(v) for k, v in metrics.items()}}
            for step, metrics in history.validation
        ],
        "unmeasured": list(unmeasured or []),
        "ranks": latest.ranks.to_dict() if latest is not None and latest.ranks is not None else None,
        "cost": cost or cost_entry(None, 0, 0, 0.0, 0.0),
    }


def cost_entry(level: str | None, steps: int, detailed_steps: int, spent_s: float, wall_s: float) -> dict:
    """bpviz's measured share of the step time over `steps` timed steps, its mean time per step, the level."""
    return {
        "level": level,
        "steps": steps,
        "detailed_steps": detailed_steps,
        "share": spent_s / wall_s if wall_s > 0 else None,
        "overhead_ms_per_step": 1e3 * spent_s / steps if steps else None,
        "step_ms": 1e3 * wall_s / steps if steps else None,
    }


def layer_entry(layer: LayerStep) -> dict:
    """One layer of the report."""
    entry = {"name": layer.name, "shape": list(layer.shape)}
    for name in _LAYER_FIELDS:
        value = getattr(layer, name)
        entry[name] = _json_float(value) if isinstance(value, float) else value
    return entry


def _json_float(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
