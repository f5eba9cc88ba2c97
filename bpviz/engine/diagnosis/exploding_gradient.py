"""exploding_gradient: gradient norms that blow up over time, or grow layer over layer toward the input.

Judged against the run itself, never against a fixed norm: a loss summed
over the batch makes every gradient thousands of times larger than the same
loss averaged, and such a run trains fine. What is wrong at any scale is a
norm that jumps far above its own recent median (an error when the loss
climbs with it), early layers far above the last, and squares that overflow
float32 (a norm above about 1.8e19: the norm is the root of a float32 sum of
squares). NaN/Inf themselves are nan_or_inf's to report.

The jump is looked for twice: in the parameters' gradients the optimizer
steps with, and in the same gradients as the backward left them
(StepRecord.grad_norm_backward). Gradient clipping caps the first at
max_norm on every step, so an explosion under clip_grad_norm_ shows only in
the second; it is said so, since the clipping hides it without curing it.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Iterator

from bpviz.engine.diagnosis.gradient_scale import backward_total_norm, layer_grad_rms, total_grad_norm
from bpviz.engine.diagnosis.loss_trend import loss_rose
from bpviz.engine.diagnosis.rule import Context, Observation
from bpviz.engine.record.records import StepRecord

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
CLIPPED_REMEDIES = REMEDIES[1:]  # clipping already caps the update: more of it is no cure


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
    jump = _jump(ctx, total_grad_norm)
    backward = record.grad_norm_backward
    hidden = _jump(ctx, backward_total_norm) if jump is None and backward is not None and backward > total else None
    if jump is not None or hidden is not None:
        rose = loss_rose(ctx.history, record, cfg.exploding_window)
        loss = " while the loss rose" if rose else ""
        if jump is not None:
            message = (
                f"The total gradient norm jumped to {total:.2e}, {jump:.0f} times its recent median{loss}; "
                f"the largest is at {largest}."
            )
        else:
            message = (
                f"The total gradient norm the backward produced jumped to {backward:.2e}, {hidden:.0f} times its "
                f"recent median{loss}, and was cut to {total:.2e} before the optimizer step (clip_grad_norm_), "
                f"which hides the explosion without curing it; the largest is at {largest}."
            )
        yield _obs("error" if rose else "warning", None, message, CLIPPED_REMEDIES if jump is None else REMEDIES)
        return
    if len(rms) >= 3 and rms[-1][1] > 0 and rms[0][1] / rms[-1][1] > cfg.exploding_ratio:
        ratio = rms[0][1] / rms[-1][1]
        yield _obs(
            "error" if ratio > cfg.exploding_ratio_error else "warning",
            rms[0][0],
            f"Gradients grow toward the input: {rms[0][0]} gets {ratio:.1e} times the gradient of {rms[-1][0]}.",
        )


def _jump(ctx: Context, norm_of: Callable[[StepRecord], float | None]) -> float | None:
    """How many times its recent median the step's `norm_of` is, when above `exploding_growth`; else None."""
    record, cfg = ctx.record, ctx.config
    now = norm_of(record)
    window = itertools.islice(reversed(ctx.history.records), 1, cfg.exploding_window + 1)  # the step's is last
    previous = [
        norm
        for past in window
        if past.step < record.step and (norm := norm_of(past)) is not None and math.isfinite(norm)
    ]
    median = statistics.median(previous) if previous else 0.0
    if now is None or median <= 0 or not now > cfg.exploding_growth * median:
        return None
    return now / median


def _obs(severity: str, layer: str | None, message: str, remedies: list[str] = REMEDIES) -> Observation:
    return Observation(KIND, severity, layer, message, EXPLANATION, remedies)
