"""grad_scaler_skip: steps GradScaler skipped because the scaled float16 gradients overflowed.

A skip is how dynamic loss scaling finds its scale: it starts high
(65536), halves whenever the scaled gradients overflow, and retries, so a
few skips early in fp16 training are routine and no sign of a NaN or an
explosion in the model. Frequent skips, or a scale that fell below 1 (the
gradients overflow even unscaled), are a real overflow worth a warning.
"""

from __future__ import annotations

from collections.abc import Iterator

from bpviz.engine.diagnosis.rule import Context, Observation

KIND = "grad_scaler_skip"
KINDS = (KIND,)
STATEFUL = False
EXPLANATION = (
    "In float16 training GradScaler multiplies the loss by a scale before backward so small gradients do "
    "not underflow. When the scaled gradients overflow to Inf, it skips that optimizer step and lowers the "
    "scale: early in training this happens a few times while the scale settles, and the weights are untouched."
)
REMEDIES = [
    "Nothing, for a few skips early in training.",
    "If skips keep coming: look for a layer whose values overflow float16 (attention logits, a large sum), "
    "keep it in float32 (autocast(enabled=False) around it), or use bfloat16.",
]
FREQUENT = 0.5  # share of the recent steps skipped for a warning
WINDOW = 10


def check(ctx: Context) -> Iterator[Observation]:
    record = ctx.record
    if record is None or not record.grad_scaler_skipped:
        return
    recent = list(ctx.history.records)[-WINDOW:]
    skipped = sum(1 for r in recent if r.grad_scaler_skipped)
    scale = record.grad_scale
    frequent = len(recent) >= WINDOW // 2 and skipped / len(recent) > FREQUENT
    severity = "warning" if frequent or (scale is not None and scale < 1) else "info"
    at = f" at scale {scale:g}" if scale is not None else ""
    yield Observation(
        KIND,
        severity,
        None,
        f"GradScaler skipped the optimizer step of step {record.step}: the gradients, scaled{at}, overflowed "
        f"float16 ({skipped} of the last {len(recent)} steps skipped).",
        EXPLANATION,
        REMEDIES,
    )
