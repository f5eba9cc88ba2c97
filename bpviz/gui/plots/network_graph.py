"""The network view's data: what a node's colour means, and how layers group into module blocks.

Kept apart from the widget and its paint items so the grouping and the
metrics read (and test) without a scene; the palettes are the theme's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from bpviz.engine.diagnosis.dead_relu import inactive_not_dead
from bpviz.engine.record.records import LayerStep
from bpviz.gui import theme
from bpviz.gui.gradient_state import (
    COLOURS,
    LABELS,
    MEASURED,
    NONFINITE,
    SAMPLED_ZERO,
    UNMEASURED,
    ZERO,
    gradient_state,
)

COLLAPSE_ABOVE = 60  # more layers than this: blocks start collapsed
BLOCK_DEPTH = 2  # blocks group layers by at most this many leading module names ("layer1.0")


@dataclass(frozen=True)
class Metric:
    """What a node's colour means: a value per layer, its range, and how a collapsed block sums its layers up."""

    label: str
    value: Callable[[LayerStep], float | None]
    fixed: tuple[float, float] | None  # colour range; None: from the values shown
    worst: Callable  # max or min: a block shows its worst layer
    colours: tuple[str, ...]
    fmt: Callable[[float], str]  # a node's value
    scale: Callable[[float], str]  # the legend's ends
    state: Callable[[LayerStep], str] | None = None  # why a layer has no value, when it can say: a key of `states`
    states: dict[str, tuple[str, str]] | None = None  # state -> (fill colour, label); also the legend's swatches


def _power_of_ten(log_value: float) -> str:
    """A log10 value as the number it stands for, readably: -9.4 -> "4e-10", 0.0 -> "1"."""
    return f"{10.0**log_value:.1g}"


def _percent(value: float) -> str:
    return f"{value:.0f}%"


INACTIVE = "inactive"  # the dead-units metric's state for silent units that still get a gradient


def _dead(layer: LayerStep) -> float | None:
    if inactive_not_dead(layer) or not layer.units or layer.dead_units is None:
        return None
    return 100.0 * layer.dead_units / layer.units


def _dead_state(layer: LayerStep) -> str:
    return INACTIVE if inactive_not_dead(layer) else MEASURED


def _saturation(layer: LayerStep) -> float | None:
    return None if layer.saturated_fraction is None else 100.0 * layer.saturated_fraction


def _log(value: float | None) -> float | None:
    return math.log10(value) if value is not None and value > 0 and math.isfinite(value) else None


BAD_SCALE = theme.SCALES["bad"]
METRICS = {
    "dead": Metric(
        "dead units %",
        _dead,
        (0.0, 100.0),
        max,
        BAD_SCALE,
        lambda v: f"{v:.0f}% dead",
        _percent,
        _dead_state,
        {INACTIVE: (theme.MUTED, "inactive, not dead")},
    ),
    "grad": Metric(
        "gradient norm (log scale)",
        lambda l: _log(l.grad_norm),
        None,
        min,
        theme.SCALES["gradient"],
        lambda v: f"‖g‖ {_power_of_ten(v)}",
        _power_of_ten,
        gradient_state,
        {s: (COLOURS[s], LABELS[s]) for s in (ZERO, SAMPLED_ZERO, NONFINITE, UNMEASURED)},
    ),
    "saturation": Metric(
        "saturation %", _saturation, (0.0, 100.0), max, BAD_SCALE, lambda v: f"{v:.0f}% saturated", _percent
    ),
    "update": Metric(
        "update ratio ‖ΔW‖/‖W‖ (log scale)",
        lambda l: _log(l.update_ratio),
        (-5.0, -1.0),
        max,
        theme.SCALES["update"],
        lambda v: f"ΔW/W {_power_of_ten(v)}",
        _power_of_ten,
    ),
}
STATE_RANK = (INACTIVE, UNMEASURED, SAMPLED_ZERO, ZERO, NONFINITE)  # a collapsed block shows its worst layer's state


def fitting_metric(layers: list[LayerStep]) -> str:
    """The colouring a model opens with: dead units when it has ReLU-family layers, else the gradient norm.

    A model without such layers coloured by dead units shows nothing but "–".
    """
    return "dead" if any(layer.units is not None for layer in layers) else "grad"


def block_of(name: str) -> tuple[str, ...]:
    """The module block a layer belongs to: its containing modules, at most BLOCK_DEPTH deep (() for top level)."""
    return tuple(name.split(".")[:-1])[:BLOCK_DEPTH]


@dataclass
class Block:
    key: tuple[str, ...]
    members: list[str]
    expanded: bool = True

    @property
    def label(self) -> str:
        return ".".join(self.key)


def group(names: list[str]) -> list[str | Block]:
    """Layers in execution order, runs of two or more layers of the same block gathered into a Block."""
    items: list[str | Block] = []
    for name in names:
        key = block_of(name)
        last = items[-1] if items else None
        if key and isinstance(last, Block) and last.key == key:
            last.members.append(name)
        elif key and isinstance(last, str) and block_of(last) == key:
            items[-1] = Block(key, [last, name])
        else:
            items.append(name)
    return items


def span(values) -> tuple[float, float]:
    """A colour range for `values` on half-decade steps, never empty."""
    values = list(values)
    if not values:
        return 0.0, 1.0
    lo, hi = math.floor(min(values) * 2) / 2, math.ceil(max(values) * 2) / 2
    return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)
