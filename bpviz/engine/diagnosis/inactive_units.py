"""inactive_units: units of a leaky activation (LeakyReLU, PReLU, ELU, GELU, ...) that never reach the positive side.

They are not dead: for negative inputs these activations still pass a
(small) gradient, so the weights feeding the units keep changing and the
units can come back. This is what a layer looks like right after its ReLU
was swapped for LeakyReLU to revive dead units: the count falls only as
training moves the units' inputs up, so it is said, not alarmed about.
"""

from __future__ import annotations

from collections.abc import Iterator

from bpviz.engine.diagnosis.dead_relu import died_at, silent_layers
from bpviz.engine.diagnosis.rule import Context, Observation
from bpviz.engine.report.percent import percent_text

KIND = "inactive_units"
KINDS = (KIND,)
STATEFUL = True
EXPLANATION = (
    "Inactive here means: a unit of an activation that keeps a gradient for negative inputs ({family}) gave no "
    "positive output on any sample for {window} steps. Unlike a dead ReLU unit it still passes a gradient (small: "
    "the negative slope), so it still learns and can become active again; after a swap from ReLU this takes "
    "some steps, and longer the further below zero the inputs sit."
)
REMEDIES = [
    "Train on and watch the count fall; the gradient now reaches the layers before it.",
    "Re-initialise the inactive units' incoming weights and biases, for a faster start.",
    "Fix the initialisation (Kaiming, zero or small positive bias) if they never fired at all.",
]


def check(ctx: Context) -> Iterator[Observation]:
    if ctx.record is None:
        return
    cfg = ctx.config
    for layer, share, since in silent_layers(ctx, dead_family=False):
        died = died_at(layer, since)
        when = f" since step {died}" if died is not None else ""
        yield Observation(
            KIND,
            "info",
            layer.name,
            f"{layer.dead_units} of {layer.units} units of {layer.name} ({percent_text(share, 0)}) "
            f"are inactive{when}: never "
            f"positive for {cfg.dead_window} steps, but not dead: {layer.type} still passes them a gradient.",
            EXPLANATION.format(family=layer.type, window=cfg.dead_window),
            list(REMEDIES),
        )
