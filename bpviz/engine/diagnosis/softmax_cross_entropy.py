"""softmax_before_cross_entropy: probabilities fed to a loss that applies log-softmax itself.

Detected from the loss's autograd graph (a LogSoftmax whose input is a
Softmax), so it works for module and functional softmax alike and in the
user's own training loop, where bpviz never sees the loss function.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from bpviz.engine.diagnosis.rule import Context, Observation

KIND = "softmax_before_cross_entropy"
KINDS = (KIND,)
STATEFUL = False
EXPLANATION = (
    "CrossEntropyLoss applies log-softmax to its input. Given probabilities from a Softmax, it squashes "
    "them a second time: outputs in [0, 1] make the loss nearly flat, gradients tiny, and training slow or stuck."
)
REMEDIES = [
    "Remove the final Softmax and feed the raw logits to CrossEntropyLoss.",
    "If you need probabilities, apply softmax only at inference, or use NLLLoss on log_softmax outputs.",
]
_PASS_THROUGH = ("View", "Reshape", "Unsqueeze", "Squeeze", "Permute", "Transpose", "Clone", "ToCopy", "Contiguous")


def loss_applies_softmax_twice(loss: torch.Tensor, depth: int = 6) -> bool:
    """Whether the loss's graph holds a LogSoftmax fed (through views) by a Softmax."""
    frontier = [loss.grad_fn] if loss.grad_fn is not None else []
    for _ in range(depth):
        following = []
        for node in frontier:
            if type(node).__name__.startswith("LogSoftmaxBackward") and _fed_by_softmax(node):
                return True
            following.extend(fn for fn, _ in node.next_functions if fn is not None)
        frontier = following
    return False


def _fed_by_softmax(node) -> bool:
    for fn, _ in node.next_functions:
        while fn is not None and type(fn).__name__.startswith(_PASS_THROUGH):
            fn = fn.next_functions[0][0] if fn.next_functions else None
        if fn is not None and type(fn).__name__.startswith("SoftmaxBackward"):
            return True
    return False


def check(ctx: Context) -> Iterator[Observation]:
    record = ctx.record
    if record is None or not record.softmax_before_cross_entropy:
        return
    softmax = next((l.name for l in reversed(record.layers) if l.family == "softmax"), None)
    yield Observation(
        KIND,
        "error",
        softmax,
        f"The model's output goes through a Softmax{f' ({softmax})' if softmax else ''} and then into a "
        f"cross-entropy loss, which applies log-softmax again.",
        EXPLANATION,
        REMEDIES,
    )
