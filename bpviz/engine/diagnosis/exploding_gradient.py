"""exploding_gradient: gradient norms that blow up, absolutely, over time, or layer over layer toward the input.

NaN/Inf alone come too late to act on; a total norm far above its own
recent median, or early layers far above the last, is the warning before it.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Iterator

from bpviz.engine.diagnosis.gradient_scale import layer_grad_rms, total_grad_norm
from bpviz.engine.diagnosis.rule import Context, Observation

KIND = "exploding_gradient"
KINDS = (KIND,)
STATEFUL = True
EXPLANATION = (
    "Gradients that grow layer after layer toward the input, or step after step, make updates so large "
    "that the loss jumps or diverges and values overflow to Inf/NaN."
)
REMEDIES = [
    "Clip gradients (torch.nn.utils.clip_grad_norm_).",
    "Lower the learning rate.",
    "Use a smaller weight initialisation (Kaiming/Xavier) and normalisation layers.",
    "Check the loss for a scale error (e.g. summing instead of averaging).",
]


def check(ctx: Context) -> Iterator[Observation]:
    record = ctx.record
    if record is None:
        return
    cfg = ctx.config
    total = total_grad_norm(record)
    if total is None or math.isnan(total) or any(layer.grad_nonfinite for layer in record.layers):
        return  # NaN/Inf gradients are nan_or_inf's to report
    rms = layer_grad_rms(record)
    largest = max(rms, key=lambda item: item[1])[0] if rms else None
    rms = [(name, value) for name, value in rms if math.isfinite(value)]
    if math.isinf(total):  # every value finite, but their squares overflow float32
        yield Observation(
            KIND,
            "error",
            None,
            "The gradient norm overflows float32 (above 1e38) although every gradient is finite; "
            f"the largest is at {largest}.",
            EXPLANATION,
            REMEDIES,
        )
        return
    if total > cfg.exploding_norm:  # a model-wide condition: one finding, whichever layer is largest now
        yield Observation(
            KIND,
            "error",
            None,
            f"The total gradient norm is {total:.2e} (above {cfg.exploding_norm:.0e}); the largest is at {largest}.",
            EXPLANATION,
            REMEDIES,
        )
        return
    previous = [
        norm
        for past in list(ctx.history.records)[-cfg.exploding_window - 1 : -1]
        if (norm := total_grad_norm(past)) is not None and math.isfinite(norm)
    ]
    if len(previous) >= 3:
        median = statistics.median(previous)
        if median > 0 and total > cfg.exploding_growth * median:
            yield Observation(
                KIND,
                "warning",
                None,
                f"The total gradient norm jumped to {total:.2e}, {total / median:.0f} times its recent median; "
                f"the largest is at {largest}.",
                EXPLANATION,
                REMEDIES,
            )
            return
    if len(rms) >= 3 and rms[-1][1] > 0 and rms[0][1] / rms[-1][1] > cfg.exploding_ratio:
        yield Observation(
            KIND,
            "warning",
            rms[0][0],
            f"Gradients grow toward the input: {rms[0][0]} gets {rms[0][1] / rms[-1][1]:.1e} times the gradient "
            f"of {rms[-1][0]}.",
            EXPLANATION,
            REMEDIES,
        )
