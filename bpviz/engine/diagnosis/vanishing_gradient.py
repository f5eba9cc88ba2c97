"""vanishing_gradient: layers whose gradients, and so their updates, are orders of magnitude below the others'.

A fixed absolute bound misfires on models of different scale, so every test
is relative: the first weighted layer against the largest of the second
half, and any layer against the model's largest. A small gradient is a
problem only when the update it makes is small too: an optimizer with
per-parameter step sizes (Adam, RMSprop) takes full steps on tiny
gradients, which is how ConvNeXt's layer-scale at 1e-6 trains. So when the
optimizer's updates were measured, they must be small in the same
proportion before anything is said.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from bpviz.engine.diagnosis.gradient_scale import layer_grad_rms
from bpviz.engine.diagnosis.rule import Context, Observation
from bpviz.engine.record.records import StepRecord

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
    record = ctx.record
    if record is None:
        return
    cfg = ctx.config
    # Exactly zero gradients are no signal of vanishing: frozen paths or dead units, reported by their own rules.
    rms = [(name, value) for name, value in layer_grad_rms(record) if math.isfinite(value) and value > 0]
    if len(rms) < 3:
        return
    first_name, first = rms[0]
    late_name, late = max(rms[len(rms) // 2 :], key=lambda item: item[1])
    ratio = _learning_ratio(record, first_name, first, late_name, late)
    if ratio < cfg.vanishing_ratio:
        yield Observation(
            KIND,
            "error" if ratio < cfg.vanishing_ratio_error else "warning",
            first_name,
            f"Gradients reaching {first_name} are {late / first:.1e} times smaller than at "
            f"{late_name} (RMS {first:.1e} vs {late:.1e}){_updates(record, first_name, late_name)}: "
            f"the first layers barely learn.",
            EXPLANATION,
            REMEDIES,
        )
        return  # one problem, one finding: the starved layers after the first are the same story
    top_name, top = max(rms, key=lambda item: item[1])
    for name, value in rms:
        if _learning_ratio(record, name, value, top_name, top) < cfg.vanishing_ratio_error:
            yield Observation(
                KIND,
                "warning",
                name,
                f"Gradients reaching {name} are {top / value:.1e} times smaller than at {top_name} "
                f"(RMS {value:.1e} vs {top:.1e}){_updates(record, name, top_name)}: it barely learns.",
                EXPLANATION,
                REMEDIES,
            )


def _learning_ratio(record: StepRecord, small: str, small_rms: float, large: str, large_rms: float) -> float:
    """How much less `small` learns than `large`: the larger of their gradient and update-ratio proportions."""
    ratio = small_rms / large_rms
    small_update, large_update = _update_ratio(record, small), _update_ratio(record, large)
    if small_update is not None and large_update:
        ratio = max(ratio, small_update / large_update)
    return ratio


def _update_ratio(record: StepRecord, layer: str) -> float | None:
    for step in record.layers:
        if step.name == layer:
            return step.update_ratio if step.update_ratio is not None and math.isfinite(step.update_ratio) else None
    return None


def _updates(record: StepRecord, small: str, large: str) -> str:
    small_update, large_update = _update_ratio(record, small), _update_ratio(record, large)
    if small_update is None or not large_update:
        return ""
    return f", and so are its updates (||dW||/||W|| {small_update:.1e} vs {large_update:.1e})"
