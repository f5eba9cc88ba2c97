"""dead_relu: ReLU-family units that stopped firing, so stopped learning.

Unlike a rule that calls a unit dead when it fires on under 1% of samples
and fires only past half a layer, a unit here is dead when it gave no
positive output on any sample for `dead_window` steps: it then receives no
gradient and cannot recover. A tenth of a layer is worth a warning.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from bpviz.engine.diagnosis.rule import Context, Observation

KIND = "dead_relu"
KINDS = (KIND,)
STATEFUL = True
EXPLANATION = (
    "A ReLU unit whose input stays negative outputs zero and passes back zero gradient, so the weights "
    "feeding it never change again. Dead units are lost capacity; when many die the layer stops learning."
)
REMEDIES = [
    "Lower the learning rate (a large step often pushes biases far negative).",
    "Use LeakyReLU or GELU, which keep a gradient for negative inputs.",
    "Initialise with Kaiming (He) initialisation and a zero or small positive bias.",
    "Add BatchNorm before the activation, or gradient clipping.",
    "Re-initialise the dead units' incoming weights and biases.",
]


def check(ctx: Context) -> Iterator[Observation]:
    if ctx.record is None:
        return
    cfg = ctx.config
    for layer in ctx.record.layers:
        if not layer.units or layer.dead_units is None or layer.nonfinite:
            continue  # NaN outputs are never positive: that is nan_or_inf's story, not dead units
        if ctx.tracker.steps_seen(layer.name) < cfg.dead_window:
            continue
        share = layer.dead_units / layer.units
        if share < cfg.dead_warning:
            continue
        severity = "error" if share >= cfg.dead_error else "warning"
        since = ctx.tracker.dead_since.get(layer.name)
        died = ""
        if since is not None and layer.dead_unit_ids is not None and len(layer.dead_unit_ids):
            died = f"; most went silent at step {int(np.median(since[layer.dead_unit_ids]))}"
        yield Observation(
            KIND,
            severity,
            layer.name,
            f"{layer.dead_units} of {layer.units} units of {layer.name} ({share:.0%}) are dead: no positive output "
            f"on any sample for {cfg.dead_window} steps{died}.",
            EXPLANATION,
            REMEDIES,
        )
