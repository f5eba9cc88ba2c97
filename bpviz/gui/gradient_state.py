"""What a layer's gradient norm says, in words every view uses the same way.

A zero gradient is the central symptom of a dead layer (nothing flows back
through it), not a gap in the data; NaN/Inf is a broken step; "not measured"
means no gradient reached the layer's output at all (it does not feed the loss,
or nothing before it needs a gradient). The three must never look alike.
"""

from __future__ import annotations

import math

from bpviz.engine.record.records import LayerStep
from bpviz.gui import theme

MEASURED, ZERO, NONFINITE, UNMEASURED = "measured", "zero", "nonfinite", "unmeasured"

LABELS = {
    ZERO: "0 (no gradient)",
    NONFINITE: "NaN/Inf",
    UNMEASURED: "not measured",
}
COLOURS = {ZERO: theme.ZERO_GRADIENT, NONFINITE: theme.BAD, UNMEASURED: theme.NO_DATA}
TIPS = {
    ZERO: "The gradient reaching this layer's output is exactly zero: nothing flows back through it "
    "(a dead layer above?)",
    NONFINITE: "The gradient holds NaN or Inf: the step is broken from here down",
    UNMEASURED: "No gradient reached this layer's output (it does not feed the loss, or needs no gradient)",
}


def gradient_state(layer: LayerStep) -> str:
    """MEASURED (a finite, positive norm), ZERO, NONFINITE or UNMEASURED."""
    norm = layer.grad_norm
    if norm is None:
        return UNMEASURED
    if layer.grad_nonfinite or math.isnan(norm):
        return NONFINITE
    if norm == 0.0:
        return ZERO
    return MEASURED  # +inf only from overflowed squares of finite values: a huge but real gradient
