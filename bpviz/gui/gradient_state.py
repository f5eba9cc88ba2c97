"""What a layer's gradient norm says, in words every view uses the same way.

A zero gradient is the central symptom of a dead layer (nothing flows back
through it), not a gap in the data; NaN/Inf is a broken step; "not measured"
means no gradient reached the layer's output at all (it does not feed the loss,
or nothing before it needs a gradient). The three must never look alike. A
norm the economy level estimated from a sample as 0.0 is none of them: its
sample held no nonzero value, yet a few live units outside it may still pass
a gradient back (the chain rule on screen would be broken by "no gradient").
"""

from __future__ import annotations

import math

from bpviz.engine.record.records import LayerStep
from bpviz.gui import theme

MEASURED, ZERO, SAMPLED_ZERO, NONFINITE, UNMEASURED = "measured", "zero", "sampled zero", "nonfinite", "unmeasured"

LABELS = {
    ZERO: "0 (no gradient)",
    SAMPLED_ZERO: "≈0 (sampled)",
    NONFINITE: "NaN/Inf",
    UNMEASURED: "not measured",
}
COLOURS = {
    ZERO: theme.ZERO_GRADIENT,
    SAMPLED_ZERO: theme.ZERO_GRADIENT,
    NONFINITE: theme.BAD,
    UNMEASURED: theme.NO_DATA,
}
TIPS = {
    ZERO: "The gradient reaching this layer's output is exactly zero: nothing flows back through it "
    "(a dead layer above?)",
    SAMPLED_ZERO: "Every value of this gradient's strided sample is zero: at the economy level its norm is "
    "estimated from that sample, so it is tiny or zero, and a few units outside the sample may still pass a "
    'gradient back. The full level (Settings, or level="full") measures every value.',
    NONFINITE: "The gradient holds NaN or Inf: the step is broken from here down",
    UNMEASURED: "No gradient reached this layer's output (it does not feed the loss, or needs no gradient)",
}


def gradient_state(layer: LayerStep) -> str:
    """MEASURED (a finite, positive norm), ZERO, SAMPLED_ZERO (0.0 from a sample), NONFINITE or UNMEASURED."""
    norm = layer.grad_norm
    if norm is None:
        return UNMEASURED
    if layer.grad_nonfinite or math.isnan(norm):
        return NONFINITE
    if norm == 0.0:
        return SAMPLED_ZERO if layer.grad_norm_sampled else ZERO
    return MEASURED  # +inf only from overflowed squares of finite values: a huge but real gradient
