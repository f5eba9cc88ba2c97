"""saturated_activation: sigmoid/tanh/hardtanh outputs piled at their bounds, where the derivative is ~0.

Only hidden activations: one whose output the model returns feeds the loss
directly, and a loss made for it (binary cross-entropy after a sigmoid)
cancels the flat derivative, so a VAE's output sigmoid sitting at 0 on a
black background is the model being right, not stuck.
"""

from __future__ import annotations

from collections.abc import Iterator

from bpviz.engine.diagnosis.rule import Context, Observation
from bpviz.engine.report.percent import percent_text

KIND = "saturated_activation"
KINDS = (KIND,)
STATEFUL = True
EXPLANATION = (
    "A sigmoid or tanh near its bound has a derivative close to zero, so almost no gradient passes "
    "through it: the layers before it stop learning, as with vanishing gradients."
)
REMEDIES = [
    "Normalise the inputs and pre-activations (BatchNorm/LayerNorm before the activation).",
    "Use a smaller weight initialisation (Xavier for sigmoid/tanh) or a lower learning rate.",
    "Use a non-saturating activation (ReLU family, GELU) in hidden layers.",
]


def check(ctx: Context) -> Iterator[Observation]:
    if ctx.record is None:
        return
    margin = ctx.config.saturation_margin
    outputs = ctx.record.output_layers
    for layer in ctx.record.layers:
        share = layer.saturated_fraction
        if share is None or share <= ctx.config.saturation_warning or layer.name in outputs:
            continue
        yield Observation(
            KIND,
            "warning",
            layer.name,
            f"{percent_text(share, 0)} of {layer.name}'s outputs are within {margin:.0%} of the {layer.family} "
            f"bounds, where "
            f"its gradient is nearly zero.",
            EXPLANATION,
            REMEDIES,
        )
