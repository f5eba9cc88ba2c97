"""What the rules looked at so far: which checks ran, on which layers, over which steps.

"No findings" only reassures when it says what was checked: a model without
ReLU layers was never checked for dead units, and a train/eval mistake in
validation shows only once a validation ran.
"""

from __future__ import annotations

from dataclasses import dataclass

from bpviz.engine.config import Config
from bpviz.engine.diagnosis.dead_relu import DEAD_FAMILY
from bpviz.engine.record.history import History


@dataclass(frozen=True)
class Check:
    """One rule as it applied to this run."""

    kind: str
    what: str  # what it looks for, in a few words
    layers: tuple[str, ...]  # what it looked at (layers or modules); empty: nothing in this model to look at
    steps: str  # over which steps, or why not yet
    applies: bool = True  # False: nothing in the model (or the run so far) for it to look at


def checks_run(history: History, config: Config) -> list[Check]:
    """Every rule with what it covered in `history`; [] before the first step."""
    latest = history.latest
    if latest is None:
        return []
    first, seen = history.span()
    last = latest.step
    steps = f"step {first}" if first == last else f"steps {first}–{last}"
    layers = tuple(layer.name for layer in latest.layers)
    relu = tuple(x.name for x in latest.layers if x.units is not None and x.family == DEAD_FAMILY)
    weighted = tuple(x.name for x in latest.layers if x.param_grad_norm is not None)
    bounded = tuple(x.name for x in latest.layers if x.saturated_fraction is not None)
    modes = tuple(dict.fromkeys(m for f in latest.forwards for m in (*f.training_modules, *f.eval_modules)))
    window = config.dead_window
    dead_steps = steps if seen >= window else f"from step {first + window - 1} (needs {window} steps)"
    validations = len(history.validation)
    return [
        Check("nan_or_inf", "NaN/Inf in outputs and gradients", layers, steps),
        Check("dead_relu", f"dead ReLU units (no positive output for {window} steps)", relu, dead_steps, bool(relu)),
        Check("vanishing_gradient", "vanishing gradients (input side vs output side)", weighted, steps, bool(weighted)),
        Check("exploding_gradient", "exploding gradients (size and growth)", weighted, steps, bool(weighted)),
        Check("saturated_activation", "saturated sigmoid/tanh outputs", bounded, steps, bool(bounded)),
        Check("eval_mode_in_training", "dropout or BatchNorm in eval mode while training", modes, steps, bool(modes)),
        Check(
            "train_mode_in_eval",
            "dropout or BatchNorm in training mode during validation",
            modes,
            f"{validations} validation{'s' if validations != 1 else ''}" if validations else "no validation ran yet",
            bool(modes) and validations > 0,
        ),
        Check("softmax_before_cross_entropy", "a softmax before a cross-entropy loss", ("the loss",), steps),
    ]
