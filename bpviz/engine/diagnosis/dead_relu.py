"""dead_relu: ReLU units that stopped firing, so stopped learning; and what the evidence says to try first.

"Dead" means a plain ReLU (or ReLU6) unit that gave no positive output on
any sample for `dead_window` steps: its output is zero and so is the gradient
it passes back, so the weights feeding it never change and it cannot recover.
(Unlike a rule that calls a unit dead when it fires on under 1% of samples
and fires only past half a layer.) A unit of an activation that still passes
a gradient for negative inputs (LeakyReLU, PReLU, ELU, GELU, SiLU: what a remedy
may swap in) is only *inactive*, not dead: `inactive_units` reports those.
A tenth of a layer is worth a warning.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from bpviz.engine.diagnosis.rule import Context, Observation
from bpviz.engine.record.records import LayerStep, StepRecord
from bpviz.engine.report.percent import percent_text

KIND = "dead_relu"
KINDS = (KIND,)
STATEFUL = True
DEAD_FAMILY = "relu"  # zero output and zero gradient for negative inputs: the only family whose units die
EXPLANATION = (
    "Dead here means: a ReLU unit whose input stayed negative on every sample for {window} steps. It outputs zero "
    "and passes back zero gradient, so the weights feeding it never change again. Dead units are lost capacity; "
    "when many die the layer stops learning."
)
LEARNING_RATE = "Lower the learning rate (a large step often pushes biases far negative)."
INITIALISATION = "Initialise with Kaiming (He) initialisation and a zero or small positive bias."
LEAKY = "Use LeakyReLU or GELU, which keep a gradient for negative inputs."
NORMALISE = "Add BatchNorm before the activation, or gradient clipping."
REINITIALISE = "Re-initialise the dead units' incoming weights and biases."
UPSTREAM = (
    "Look at what feeds these units first: their pre-activations are their biases alone, so their input is all "
    "zero (a layer before whose units all died passes nothing on) or so are their incoming weights; they come "
    "back once a signal reaches them."
)


def inactive_not_dead(layer: LayerStep) -> bool:
    """A unit-tracked layer whose activation still passes a gradient (a ReLU a remedy replaced): inactive, not dead."""
    return layer.units is not None and layer.family != DEAD_FAMILY


def silent_layers(ctx: Context, dead_family: bool) -> Iterator[tuple[LayerStep, float, np.ndarray | None]]:
    """(layer, share of its units silent, per-unit first silent step) for unit-tracked layers past the warning share.

    `dead_family`: plain ReLU layers (dead units) or the others (inactive units).
    """
    cfg = ctx.config
    for layer in ctx.record.layers:
        if not layer.units or layer.dead_units is None or layer.nonfinite:
            continue  # NaN outputs are never positive: that is nan_or_inf's story, not dead units
        if (layer.family == DEAD_FAMILY) != dead_family or ctx.tracker.steps_seen(layer.name) < cfg.dead_window:
            continue
        share = layer.dead_units / layer.units
        if share >= cfg.dead_warning:
            yield layer, share, ctx.tracker.dead_since.get(layer.name)


def died_at(layer: LayerStep, since: np.ndarray | None) -> int | None:
    """The step most of the layer's silent units went silent at (their median), or None when unknown."""
    if since is None or layer.dead_unit_ids is None or not len(layer.dead_unit_ids):
        return None
    return int(_median(since[layer.dead_unit_ids]))


def feeding_biases(record: StepRecord) -> dict[str, np.ndarray]:
    """Per unit-tracked layer, the bias of the layer feeding its units, which the record keeps under the unit-tracked
    layer's own name. Runs recorded before it did keep each bias under the feeding layer's name; for those the
    nearest earlier layer with one bias per unit stands in (a Linear's before its ReLU), found in one pass in
    forward order for all layers, not a search back from each (a deep network with hundreds of ReLU layers
    dying spent milliseconds a step on the searches)."""
    tracked = {layer.name for layer in record.layers if layer.units is not None}
    feeding = {name: bias for name, bias in record.producer_bias.items() if name in tracked}
    if len(feeding) == len(record.producer_bias):
        return feeding
    nearest: dict[int, np.ndarray] = {}  # bias length -> the latest such bias seen so far
    for layer in sorted(record.layers, key=lambda x: x.order):
        if layer.units is not None and layer.units in nearest:
            feeding.setdefault(layer.name, nearest[layer.units])
        bias = record.producer_bias.get(layer.name)
        if bias is not None and layer.name not in tracked:
            nearest[len(bias)] = bias
    return feeding


def dead_bias(layer: LayerStep, feeding: dict[str, np.ndarray]) -> float | None:
    """The median bias of the silent units, in the layer feeding them (`feeding_biases`)."""
    bias = feeding.get(layer.name)
    if bias is None or layer.dead_unit_ids is None or not len(layer.dead_unit_ids):
        return None
    return float(_median(bias[layer.dead_unit_ids]))


def input_silent(layer: LayerStep, before: dict[str, np.ndarray]) -> bool:
    """Whether no signal reached the layer's units: every unit's largest pre-activation, live or silent, is its
    bias, as W·x + b is when the input is all zero (or the weights are), and a norm layer's shift is over a
    batch of one value each. Downstream of a layer whose units all died, the units with a negative bias die at
    step 0 too, and "the initialisation is the likely cause" sent the user to the wrong layer. Every unit, not
    the silent ones only: a silent unit whose own incoming weights are zero shows its bias too, with a live
    input. To a thousandth of the biases' scale: a norm layer's 1/sqrt(var + eps) magnifies the rounding of a
    batch of equal values a few hundred times (1e-4 of it was seen), while a signal that moves the units by less
    is next to none. `before`: the feeding biases (`feeding_biases`) of the step
    before, which the forward used; a record's own are those its update left."""
    bias, maxima, ids = before.get(layer.name), layer.unit_preact_max, layer.dead_unit_ids
    if bias is None or maxima is None or ids is None or not len(ids) or len(bias) != len(maxima):
        return False
    scale = max(1.0, float(np.abs(bias).max())) if len(bias) else 1.0
    return bool(np.allclose(maxima, bias, rtol=0.0, atol=1e-3 * scale))


def _previous(ctx: Context) -> StepRecord | None:
    """The record of the step before the one judged, when the history holds it."""
    records = ctx.history.records
    if len(records) >= 2 and records[-1] is ctx.record and records[-2].step == ctx.record.step - 1:
        return records[-2]
    return None


def _median(values: np.ndarray) -> float:
    """np.median's value, from one sort: np.median's own checks cost ten times the sort of a layer's few dead
    units, and every dead layer asks twice a step."""
    ordered = np.sort(values)
    if np.isnan(ordered[-1]):  # sorted last; np.median's answer is NaN
        return math.nan
    half = len(ordered) // 2
    return ordered[half] if len(ordered) % 2 else (ordered[half - 1] + ordered[half]) / 2


def remedies(died: int | None, bias: float | None, silent_input: bool = False) -> list[str]:
    """What to try, most likely first given the evidence.

    Units silent from the very first step with a negative bias were never alive: the
    initialisation killed them, not training, so a smaller learning rate would not help.
    Units given an all-zero input (`input_silent`) are the layers before them's to fix.
    """
    if silent_input:
        return [UPSTREAM, LEAKY, INITIALISATION, REINITIALISE]
    if died == 0 and bias is not None and bias < 0:
        return [INITIALISATION, REINITIALISE, LEAKY, NORMALISE, LEARNING_RATE]
    if died == 0:
        return [INITIALISATION, LEAKY, REINITIALISE, NORMALISE, LEARNING_RATE]
    return [LEARNING_RATE, LEAKY, INITIALISATION, NORMALISE, REINITIALISE]


def evidence(died: int | None, bias: float | None, silent_input: bool = False) -> str:
    """What the record says about when and why, for the message."""
    if died is None:
        return ""
    text = f"; most went silent at step {died}"
    if bias is not None:
        text += f", with a bias of {bias:.3g} (median)"
    if silent_input:
        text += (
            ": no signal reaches the layer (each unit's pre-activation is its bias alone): its input is all zero, "
            "or its incoming weights are"
        )
    elif died == 0 and bias is not None and bias < 0:
        text += ": they never fired, so the initialisation is the likely cause"
    return text


def check(ctx: Context) -> Iterator[Observation]:
    if ctx.record is None:
        return
    cfg = ctx.config
    feeding = before = None
    for layer, share, since in silent_layers(ctx, dead_family=True):
        if feeding is None:
            previous = _previous(ctx)
            feeding, before = feeding_biases(ctx.record), feeding_biases(previous) if previous is not None else {}
        died, bias, silent = died_at(layer, since), dead_bias(layer, feeding), input_silent(layer, before)
        yield Observation(
            KIND,
            "error" if share >= cfg.dead_error else "warning",
            layer.name,
            f"{layer.dead_units} of {layer.units} units of {layer.name} ({percent_text(share, 0)}) are dead: "
            f"no positive output "
            f"and no gradient on any sample for {cfg.dead_window} steps{evidence(died, bias, silent)}.",
            EXPLANATION.format(window=cfg.dead_window),
            remedies(died, bias, silent),
        )
