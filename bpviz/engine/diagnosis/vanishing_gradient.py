"""vanishing_gradient: the layers nearest the input get gradients orders of magnitude smaller than the last ones.

A fixed absolute bound misfires on models of different scale, so the main
test is relative: the first weighted layer against the largest of the
second half. An absolute floor catches a layer starved on its own.
"""
from __future__ import annotations

import math
from collections.abc import Iterator

from bpviz.engine.diagnosis.gradient_scale import layer_grad_rms
from bpviz.engine.diagnosis.rule import Context, Observation

KIND = "vanishing_gradient"
KINDS = (KIND,)
STATEFUL = True
EXPLANATION = (
    "Each layer multiplies the gradient flowing back by its local derivative. Saturating activations "
    "(sigmoid, tanh) and small weights shrink it at every layer, so the first layers barely learn."
)
REMEDIES = [
    "Use ReLU/GELU-family activations instead of sigmoid or tanh in hidden layers.",
    "Use Kaiming/Xavier initialisation matched to the activation.",
    "Add normalisation (BatchNorm, LayerNorm) or residual connections.",
    "Use a shallower network, or an optimiser with per-parameter step sizes (Adam).",
]


def check(ctx: Context) -> Iterator[Observation]:
    if ctx.record is None:
        return
    cfg = ctx.config
    # Exactly zero gradients are no signal of vanishing: frozen paths or dead units, reported by their own rules.
    rms = [(name, value) for name, value in layer_grad_rms(ctx.record) if math.isfinite(value) and value > 0]
    flagged = None
    if len(rms) >= 3:
        first_name, first = rms[0]
        late_name, late = max(rms[len(rms) // 2 :], key=lambda item: item[1])
        if late > 0 and first / late < cfg.vanishing_ratio:
            ratio = first / late
            severity = "error" if ratio < cfg.vanishing_ratio_error else "warning"
            flagged = first_name
            yield Observation(
                KIND,
                severity,
                first_name,
                f"Gradients reaching {first_name} are {late / max(first, 1e-300):.1e} times smaller than at "
                f"{late_name} (RMS {first:.1e} vs {late:.1e}): the first layers barely learn.",
                EXPLANATION,
                REMEDIES,
            )
    if flagged is not None:
        return  # one problem, one finding: the starved layers after the first are the same story
    for name, value in rms:
        if 0.0 < value < cfg.vanishing_floor:
            yield Observation(
                KIND,
                "warning",
                name,
                f"Gradients reaching {name} are vanishingly small (RMS {value:.1e}, below {cfg.vanishing_floor:.0e}).",
                EXPLANATION,
                REMEDIES,
            )
