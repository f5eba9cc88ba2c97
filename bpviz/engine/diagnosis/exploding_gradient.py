"""exploding_gradient: gradient norms that blow up over time, or grow layer over layer toward the input.

Judged against the run itself, never against a fixed norm: a loss summed
over the batch makes every gradient thousands of times larger than the same
loss averaged, and such a run trains fine. What is wrong at any scale is a
norm that jumps far above its own recent median (an error when the loss
climbs with it), early layers far above the last, and squares that overflow
float32 (a norm above about 1.8e19: the norm is the root of a float32 sum of
squares). NaN/Inf themselves are nan_or_inf's to report.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterator

from bpviz.engine.diagnosis.gradient_scale import layer_grad_rms, total_grad_norm
from bpviz.engine.diagnosis.loss_trend import loss_rose
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
        yield _obs(
            "error",
            None,
            "A gradient norm is above 1.8e19, where its square overflows float32, although every gradient is "
            f"finite; the largest is at {largest}.",
        )
        return
    previous = [
        norm
        for past in list(ctx.history.records)[-cfg.exploding_window - 1 : -1]
        if past.step < record.step and (norm := total_grad_norm(past)) is not None and math.isfinite(norm)
    ]
    median = statistics.median(previous) if previous else 0.0
    if median > 0 and total > cfg.exploding_growth * median:
        rose = loss_rose(ctx.history, record, cfg.exploding_window)
        loss = " while the loss rose" if rose else ""
        yield _obs(
            "error" if rose else "warning",
            None,
            f"The total gradient norm jumped to {total:.2e}, {total / median:.0f} times its recent median{loss}; "
            f"the largest is at {largest}.",
        )
        return
    if len(rms) >= 3 and rms[-1][1] > 0 and rms[0][1] / rms[-1][1] > cfg.exploding_ratio:
        ratio = rms[0][1] / rms[-1][1]
        yield _obs(
            "error" if ratio > cfg.exploding_ratio_error else "warning",
            rms[0][0],
            f"Gradients grow toward the input: {rms[0][0]} gets {ratio:.1e} times the gradient of {rms[-1][0]}.",
        )


def _obs(severity: str, layer: str | None, message: str) -> Observation:
    return Observation(KIND, severity, layer, message, EXPLANATION, REMEDIES)
