"""What the hooks hand to the collector: per-layer facts and one step's measurements, still on the device.

Kept apart from the hooks so the collector, the layer graph and the
forensics can read these shapes without depending on how they were caught.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


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


@dataclass
class ActivationCall:
    """One call of a layer within a step, its statistics still on the device."""

    layer: LayerInfo
    shape: tuple[int, ...]
    count: int
    scalars: torch.Tensor  # see the layout in stats: sums, extremes, sample counts
    histogram: torch.Tensor | None  # over the layer's fixed range, when it is known
    sample: torch.Tensor | None  # first sight: values to bin once the range is known
    unit_positive: torch.Tensor | None
    positions_per_unit: int
    preact_max: torch.Tensor | None  # per-unit maximum of a ReLU's input
    sample_size: int  # values the zero and saturation shares were counted on


@dataclass
class GradCall:
    """The gradient reaching one layer's output during backward."""

    layer: str
    scalars: torch.Tensor  # [squared norm, sum]
    histogram: torch.Tensor


@dataclass
class ForwardFacts:
    """Mode facts of one root forward; `input_sum` stays on the device until collection."""

    grad_enabled: bool
    model_training: bool
    training_modules: tuple[str, ...]
    eval_modules: tuple[str, ...]
    input_sum: torch.Tensor | None  # non-finite when the input held NaN/Inf


@dataclass
class PendingStep:
    """Everything the hooks saw since the last collection."""

    calls: list[ActivationCall] = field(default_factory=list)
    grads: list[GradCall] = field(default_factory=list)
    backward_order: list[str] = field(default_factory=list)
    forwards: list[ForwardFacts] = field(default_factory=list)
    param_grad_norms: dict[str, torch.Tensor] = field(default_factory=dict)
    grads_final: bool = False  # taken where a framework declared them final; the optimizer hook keeps them
    update_base: dict[str, torch.Tensor] = field(default_factory=dict)  # parameter copies before the update
    update_norms: dict[str, torch.Tensor] = field(default_factory=dict)
    weight_norms: dict[str, torch.Tensor] = field(default_factory=dict)  # after the update, over the same slices
