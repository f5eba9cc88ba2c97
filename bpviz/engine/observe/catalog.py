"""What is known about a model's layers independent of any step: who they are, their parameters, their ranges.

The hooks add a layer the first time they see it; the collector, the
forensics and the remedies read it. Decisions that hold for the life of a
layer live here and nowhere else: which histogram edges it keeps, and which
earlier layer holds its units' incoming weights.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from torch import nn

from bpviz.engine.made_once import MadeOnce
from bpviz.engine.observe.grad_norms import lookup_parameters
from bpviz.engine.observe.layer_kinds import RELU_FAMILY


@dataclass
class LayerInfo:
    """What is known about a layer independent of any step."""

    name: str
    type: str
    family: str | None
    module_name: str  # qualified name of the module making the call ("" for the root model)
    functional: bool  # a functional activation call, which owns no parameters
    bounds: tuple[float, float] | None  # output bounds of a bounded activation, for saturation
    tracks_units: bool = False  # ReLU-family layers (and layers that were, before a remedy replaced it)


class LayerCatalog:
    """The layers seen so far, the model's parameters by module, and each layer's fixed histogram edges."""

    def __init__(self, model: nn.Module) -> None:
        self.layers: dict[str, LayerInfo] = {}
        self._params = dict(model.named_parameters())
        self.lookups = lookup_parameters(model)  # lookup-table weights, judged on the rows a batch touched
        self._own: dict[str, dict[str, nn.Parameter]] = {}  # module name -> its own parameters by short name
        for name, param in self._params.items():
            module, _, short = name.rpartition(".")
            self._own.setdefault(module, {})[short] = param
        self._ranges: dict[str, tuple[float, float]] = {}
        # (layer, "forward" | "backward") whose tensors were checked for, or seen, changing in place after
        # their hook: only checked tensors that never changed are measured at the end of the step.
        self.checked_in_place: set[tuple[str, str]] = set()
        self.changed_in_place: set[tuple[str, str]] = set()
        self._producers: dict[tuple[str, int, int], list[str]] = {}
        self.inputs: dict[str, str | None] = {}  # layer -> the layer whose output its first call took
        self._owners: MadeOnce[dict[str, str]] = MadeOnce(64)  # per (layer names, parameter names)

    def parameters(self) -> dict[str, nn.Parameter]:
        """Every parameter of the model by qualified name, as it was when watching began."""
        return self._params

    def own_parameters(self, module_name: str) -> dict[str, nn.Parameter]:
        """The parameters a module holds directly (not its children's), by short name ("weight", "bias")."""
        return self._own.get(module_name, {})

    def note(
        self,
        name: str,
        type_name: str,
        family: str | None,
        module_name: str,
        functional: bool,
        bounds: tuple[float, float] | None,
    ) -> LayerInfo:
        """The layer `name` as just seen; a new entry when it is new or its type or family changed (a remedy)."""
        info = self.layers.get(name)
        if info is None or (info.type, info.family) != (type_name, family):
            # A layer keeps tracking units once it did, also after a remedy replaced its activation.
            tracks = family == RELU_FAMILY or (info is not None and info.tracks_units)
            info = LayerInfo(name, type_name, family, module_name, functional, bounds, tracks)
            self.layers[name] = info
        return info

    def defers(self, key: tuple[str, str]) -> bool:
        """Whether this layer's forward or backward tensor may be measured at the end of the step."""
        return key in self.checked_in_place and key not in self.changed_in_place

    def needs_check(self, key: tuple[str, str]) -> bool:
        """Whether it is still unknown if this layer's tensor changes in place after its hook."""
        return key not in self.checked_in_place

    def histogram_range(self, info: LayerInfo) -> tuple[float, float] | None:
        """The layer's fixed histogram edges when known (a bounded activation knows them at once), else None."""
        known = self._ranges.get(info.name)
        if known is None and info.bounds is not None:
            known = self._ranges[info.name] = info.bounds
        return known

    def settle_range(self, name: str, lo: float, hi: float, kept: np.ndarray) -> tuple[float, float]:
        """This step's edges for the layer: the known ones, or on first sight edges around its extremes.

        Under NaN/Inf the exact extremes say nothing about the finite values, so
        the finite ones of the values kept from this first step (`kept`) are used.
        """
        if name not in self._ranges:
            if not (math.isfinite(lo) and math.isfinite(hi)):
                finite = kept[np.isfinite(kept)]
                lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (lo, hi)
            self._ranges[name] = choose_range(lo, hi)
        return self._ranges[name]

    def advance_range(self, name: str, lo: float, hi: float, narrow: bool) -> None:
        """Choose the layer's edges for its next step from this step's exact extremes (see `next_range`)."""
        self._ranges[name] = next_range(self._ranges[name], lo, hi, narrow)

    def param_owners(self, layer_names: tuple[str, ...], param_names: tuple[str, ...]) -> dict[str, str]:
        """Each parameter's layer among `layer_names` (a step's, in forward order): the nearest enclosing module
        observed as a layer (its first call site). Kept per set of names: a model's steps repeat them."""
        return self._owners.get((layer_names, param_names), lambda: self._find_owners(layer_names, param_names))

    def _find_owners(self, layer_names: tuple[str, ...], param_names: tuple[str, ...]) -> dict[str, str]:
        by_module: dict[str, str] = {}
        for name in layer_names:
            info = self.layers[name]
            if not info.functional:
                by_module.setdefault(info.module_name, name)
        owners = {}
        for name in param_names:
            parts = name.split(".")[:-1]
            while True:
                owner = by_module.get(".".join(parts))
                if owner is not None:
                    owners[name] = owner
                    break
                if not parts:
                    break
                parts.pop()
        return owners

    def note_input(self, layer: str, producer: str | None) -> None:
        """Keep, from a layer's first call, the layer whose output it takes (None: the model's input, or code
        that hides where its input came from); the producers are found along these links."""
        self.inputs.setdefault(layer, producer)

    def producers(self, names: list[str], layer: str, units: int) -> list[str]:
        """Layers feeding `layer` whose parameters have one row per unit, nearest first.

        The walk follows each layer's input back (`note_input`), past layers
        without such parameters (Dropout, pooling) and through norm layers, and
        stops at the first Linear/Conv: the layer holding the units' incoming
        weights. Where the input's layer is not known it walks `names` (the
        step's layers in forward order) back instead; in forward order the
        nearest earlier layer of that width can be another branch's (`relu(a) *
        sigmoid(b)`, with `b` computed after `a`), whose bias says nothing of
        these units. The model's structure does not change between steps, so
        the answer is kept until new layers appear.
        """
        key = (layer, units, len(self.layers))
        cached = self._producers.get(key)
        if cached is not None:
            return cached
        found: list[str] = []
        if self.inputs.get(layer) is not None:
            name, seen = self.inputs[layer], {layer}
            while name in self.layers and name not in seen and self._walk_on(found, name, units):
                seen.add(name)
                name = self.inputs.get(name)
        else:
            for name in reversed(names[: names.index(layer)]):
                if not self._walk_on(found, name, units):
                    break
        self._producers[key] = found
        return found

    def feeding_bias(self, names: list[str], layer: str, units: int) -> nn.Parameter | None:
        """The bias that shifts the units' input: the nearest producer's that has one. Between a Linear and its
        ReLU a norm layer's (its shift, beta): the Linear's own bias is normalised away before the units see it."""
        for name in self.producers(names, layer, units):
            bias = self.own_parameters(self.layers[name].module_name).get("bias")
            if bias is not None:
                return bias
        return None

    def _walk_on(self, found: list[str], name: str, units: int) -> bool:
        """Add layer `name` to `found` when it holds one parameter row per unit; whether the walk goes on past it."""
        info = self.layers[name]
        if info.functional:
            return True
        weight = self.own_parameters(info.module_name).get("weight")
        if weight is None or weight.shape[0] != units:
            return not found
        found.append(name)
        return weight.dim() < 2  # a Linear/Conv: the units' incoming weights


def layers_inside(module: str, layers: Iterable[str]) -> list[str]:
    """The layers within module `module` (named "module.child..."), in the order given: what stands for a
    container, which is no layer itself, where a layer is needed (its forward raised)."""
    return [name for name in layers if name.startswith(f"{module}.")]


def choose_range(lo: float, hi: float) -> tuple[float, float]:
    """Histogram edges for values from `lo` to `hi`, padded so some later growth stays in view; values that are
    never negative (a ReLU's) keep the lower edge at 0, also when they all were one value (a dead layer's zeros),
    or every later widening pushed it further below the values (a ReLU drawn from -15 to 35)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return (-1.0, 1.0)
    width = hi - lo
    if width < 1e-12:
        pad = max(abs(hi), 1.0) * 0.5
        return (0.0 if lo >= 0.0 else lo - pad, hi + pad)
    pad = 0.25 * width
    new_lo = 0.0 if lo >= 0.0 else lo - pad
    return (new_lo, hi + pad)


NARROW_BELOW = 1 / 32  # values spanning less than this share of the range: narrow it (they sit in one or two bins)


def next_range(current: tuple[float, float], lo: float, hi: float, narrow: bool) -> tuple[float, float]:
    """The edges for a layer's next step, given this step's exact min `lo` and max `hi`.

    Kept while the values fit (so steps line up); widened to cover both the old
    range and the values when they leave it; with `narrow`, fitted to the values
    when they shrank to a sliver of it. NaN/Inf extremes keep the range: the
    non-finite values are counted apart and the finite ones are unknown here.
    """
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return current
    rlo, rhi = current
    if lo < rlo or hi > rhi:
        wide_lo, wide_hi = choose_range(min(lo, rlo), max(hi, rhi))
        return (min(wide_lo, rlo), max(wide_hi, rhi))
    if narrow and (hi - lo) < NARROW_BELOW * (rhi - rlo):
        fitted = choose_range(lo, hi)
        if fitted[1] - fitted[0] < rhi - rlo:
            return fitted
    return current
