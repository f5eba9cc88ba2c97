"""Per-layer gradient sizes that are comparable between layers of different widths.

Both gradient rules judge the per-element RMS of each weighted layer's
parameter gradient (norm / sqrt(count)), so a wide first layer and a narrow
last one are compared fairly.
"""

from __future__ import annotations

import math

from bpviz.engine.record.records import StepRecord


def layer_grad_rms(record: StepRecord) -> list[tuple[str, float]]:
    """(layer, gradient RMS) of every layer with trainable, gradient-receiving parameters, in forward order."""
    sums: dict[str, list[float]] = {}
    for param in record.params:
        if param.layer is None or param.grad_norm is None or param.numel == 0:
            continue
        acc = sums.setdefault(param.layer, [0.0, 0.0])
        acc[0] += param.grad_norm**2
        acc[1] += param.grad_numel if param.grad_numel else param.numel  # an embedding: the rows looked up
    order = {layer.name: i for i, layer in enumerate(record.layers)}
    named = [(name, math.sqrt(sq / n)) for name, (sq, n) in sums.items()]
    return sorted(named, key=lambda item: order.get(item[0], len(order)))


def total_grad_norm(record: StepRecord) -> float | None:
    """L2 norm over all parameter gradients of the step, or None when none had a gradient."""
    squares = [p.grad_norm**2 for p in record.params if p.grad_norm is not None]
    return math.sqrt(sum(squares)) if squares else None


def backward_total_norm(record: StepRecord) -> float | None:
    """The parameters' total gradient norm as the backward left it (before clip_grad_norm_), where it is known;
    else the one at the optimizer step."""
    return record.grad_norm_backward if record.grad_norm_backward is not None else total_grad_norm(record)
