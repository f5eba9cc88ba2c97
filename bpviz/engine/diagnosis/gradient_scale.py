"""Per-layer gradient sizes that are comparable between layers of different widths.

Both gradient rules judge the per-element RMS of each weighted layer's
parameter gradient (norm / sqrt(count)), so a wide first layer and a narrow
last one are compared fairly.
"""

from __future__ import annotations

import math

from bpviz.engine.record.records import LayerStep, StepRecord


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


def backward_grad_norm(record: StepRecord) -> float | None:
    """L2 norm over the gradients the backward pass carried to the outputs of the inner layers holding parameters
    (`carrying_weighted`), or None when none got one.

    The parameters' gradients are read at the optimizer step, after whatever the user's code did to them
    since backward() (clip_grad_norm_ above all): there an explosion that clipping caps looks like a norm
    of exactly max_norm, step after step. The gradient the backward itself carried is not touched by it."""
    squares = [layer.grad_norm**2 for layer in carrying_weighted(record)]
    return math.sqrt(sum(squares)) if squares else None


def carrying_weighted(record: StepRecord) -> list[LayerStep]:
    """The layers holding parameters with a gradient whose output got a gradient in the backward pass, but for
    the model's own outputs. Only layers with parameters: theirs are made from these gradients, so unclipped the
    two jump together, where a layer without any may be handed a gradient that the loss alone makes huge and no
    parameter's follows (a Sigmoid before BCELoss, for one confidently wrong sample: (p - y) / (p (1 - p))).
    Not the outputs: the loss's own derivative lands there, on a few target logits of a large vocabulary, which
    the economy level's strided sample of the gradient hits on some steps and misses on others."""
    weighted = {p.layer for p in record.params if p.layer is not None and p.grad_norm is not None}
    outputs = record.output_layers
    return [
        layer
        for layer in record.layers
        if layer.name in weighted
        and layer.name not in outputs
        and layer.grad_norm is not None
        and math.isfinite(layer.grad_norm)
    ]
