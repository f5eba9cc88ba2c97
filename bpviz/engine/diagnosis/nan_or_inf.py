"""nan_or_inf: where non-finite values were born: the first layer, in forward order, whose output holds them.

Once a NaN exists it spreads to everything downstream and, after an update,
to the weights; only its first appearance says where to look, so this rule
reports the first birth and stays quiet about the spread.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from bpviz.engine.diagnosis.rule import Context, Observation
from bpviz.engine.record.records import StepRecord

KIND = "nan_or_inf"
KINDS = (KIND,)
STATEFUL = False
EXPLANATION = (
    "NaN or Inf appears when a value overflows (exploding activations or gradients, exp of a large number), "
    "or from an invalid operation (log of 0 or a negative number, 0/0, sqrt of a negative number)."
)
REMEDIES = [
    "Look at the named layer's inputs: log/sqrt/division need a clamp or an epsilon.",
    "Lower the learning rate and clip gradients if values grew before they overflowed.",
    "Check the data for NaN/Inf, and mixed-precision overflow (use a GradScaler).",
]


def check(ctx: Context) -> Iterator[Observation]:
    record = ctx.record
    if record is None or KIND in ctx.known_kinds:
        return
    step = record.step
    if any(f.input_nonfinite for f in record.forwards):
        message = f"The input batch of step {step} already contains NaN/Inf: the data, not the model, is the source."
        yield _obs(None, message)
    elif record.nonfinite_origin is not None:
        yield _obs(record.nonfinite_origin, _forward_birth(record))
    elif record.loss is not None and not math.isfinite(record.loss):
        yield _obs(None, f"The loss became {record.loss} at step {step} while every layer's output was finite.")
    elif record.nonfinite_grad_origin is not None and not record.grad_scaler_skipped:  # a skip is no NaN of the model
        yield _obs(record.nonfinite_grad_origin, _backward_birth(record))


def _forward_birth(record: StepRecord) -> str:
    """Where a NaN/Inf output was made. Every layer before the origin was finite; so were its inputs when they
    were those layers' outputs (or the model's input). An input the code between layers computed (a residual
    sum, a concatenation, `x / x.sum()`) is measured before the layer reads it: holding the NaN/Inf, it was
    born in that code, and the message sends the user there; finite, the layer made it (a NaN weight). Runs
    recorded before that input was measured say only that the code may have made it."""
    layer, step = record.layer(record.nonfinite_origin), record.step
    site = record.nonfinite_input_from
    if site is None:
        return (
            f"NaN/Inf was born in {layer.name} ({layer.type}) at step {step}: its output holds it, while "
            f"everything it was given was finite."
        )
    if record.nonfinite_input_measured:
        return (
            f"NaN/Inf was born at step {step} in the code between the layers, where {site} calls {layer.name} "
            f"({layer.type}): the input that code made for {layer.name} holds it, while every layer before was "
            f"finite. Look at that code: a division, log or sqrt; a sum that overflowed."
        )
    return (
        f"NaN/Inf first appeared at {layer.name} ({layer.type}) at step {step}: its output holds it and every layer "
        f"before it was finite, but its input was made by the code between the layers, where "
        f"{site} calls it. The NaN/Inf may have been made there, before {layer.name} read it (a "
        f"division, log or sqrt; a sum that overflowed): look at that code first, then at {layer.name}."
    )


def _backward_birth(record: StepRecord) -> str:
    """Where a NaN/Inf gradient was made: not in the layer whose output gradient first holds it, but in the
    backward of what reads that output, between it and the layer reached just before it, whose gradient was
    finite (a custom autograd.Function, sqrt or division at 0)."""
    origin, step = record.nonfinite_grad_origin, record.step
    message = f"A NaN/Inf gradient first appeared at {origin} during the backward pass of step {step}"
    order = record.backward_order
    index = order.index(origin) if origin in order else 0
    before = order[index - 1] if index > 0 else None
    reached = record.layer(before) if before is not None else None
    if reached is None or reached.grad_nonfinite:
        return message + "."
    return (
        f"{message}: the gradient reaching {origin}'s output holds it, while the one reaching {before}, just before "
        f"in the backward pass, was finite. It was made by the backward of what lies between them (what reads "
        f"{origin}'s output: a custom autograd.Function, a sqrt or division at 0), not by {origin} itself."
    )


def _obs(layer: str | None, message: str) -> Observation:
    return Observation(KIND, "error", layer, message, EXPLANATION, REMEDIES)
