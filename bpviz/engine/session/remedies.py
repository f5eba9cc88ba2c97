"""Fixes applied to a live training run, each undoable and marked on the time axis.

A remedy changes the model, the optimizer or the step between two steps;
its `undo` puts back exactly what it changed. The Stepper keeps the list
and History the marks, so plots can show "before" and "after". Remedies
reach the run through `RemedyTarget` (the Stepper satisfies it), so this
module does not import the Stepper. `REMEDIES` names every remedy a caller
(the window, a script) may ask for by name.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from bpviz.engine.diagnosis.dead_relu import inactive_not_dead
from bpviz.engine.load.experiment import Experiment
from bpviz.engine.record.history import UNDO_PREFIX, History, is_undo
from bpviz.engine.watcher import Watcher

HYPERPARAMETERS = ("lr", "momentum", "weight_decay")
REPLACEMENTS = ("leaky_relu", "gelu")
# the layer types (a module's class, a functional's name) that already are each replacement
_ALREADY = {"leaky_relu": ("LeakyReLU", "leaky_relu", "leaky_relu_"), "gelu": ("GELU", "gelu")}


def already_is(layer_type: str, new: str) -> bool:
    """Whether a layer of type `layer_type` already is replacement `new`: swapping it would change nothing."""
    return layer_type in _ALREADY.get(new, ())


SWAP = " -> "  # in a swap's label, "relu2: ReLU -> LeakyReLU", between the layer's type before and after


def type_in_force(history: History, layer: str, recorded: str) -> str:
    """The type layer `layer` has now: `recorded` (its type in the latest step) changed by the swaps applied or
    undone since that step, which no step has run through yet. The window's remedy buttons follow it; read
    from the latest step alone, "→ LeakyReLU" stayed enabled right after that swap, and disabled after its undo."""
    latest = history.latest
    now = recorded
    for step, label in history.interventions:
        if latest is not None and step <= latest.step:
            continue
        undo = is_undo(label)
        text = label[len(UNDO_PREFIX) :] if undo else label
        if not text.startswith(f"{layer}: "):  # a layer's name may hold ": " and " -> " itself (a ModuleDict key)
            continue
        old, swap, new = text[len(layer) + 2 :].rpartition(SWAP)
        if swap and (new if undo else old) == now:  # it swaps from the type in force: this layer's, not "a: b"'s
            now = old if undo else new
    return now


class RemedyTarget(Protocol):
    """What a remedy needs of the run it changes (the session's Stepper has it), declared here so the
    remedies do not import the stepper that imports them."""

    experiment: Experiment
    watcher: Watcher
    clip_grad_norm: float | None

    @property
    def step_index(self) -> int: ...

    @property
    def history(self) -> History: ...


@dataclass
class Remedy:
    """An applied change: from which step it acts, what it was, and how to take it back."""

    step: int
    label: str
    undo: Callable[[], None]


def replace_activation(stepper: RemedyTarget, layer: str, new: str) -> Remedy:
    """Swap a ReLU-family layer's activation for LeakyReLU or GELU (module or functional use)."""
    if new not in REPLACEMENTS:
        raise ValueError(f"unknown replacement {new!r}; choose one of {', '.join(REPLACEMENTS)}")
    probe = stepper.watcher.probe
    info = stepper.watcher.catalog.layers.get(layer)
    if info is None:
        raise ValueError(f"no layer {layer!r} has been seen yet; run a step first")
    if already_is(info.type, new):
        raise ValueError(f"{layer} is a {info.type} already; replacing it with {new} would change nothing")
    if info.functional:
        in_place = info.type.endswith("_")
        if in_place and new == "gelu":
            raise ValueError(f"{layer} is an in-place activation; it can only become an in-place LeakyReLU")
        probe.substitutions[layer] = _functional(new, in_place)
        return Remedy(stepper.step_index, f"{layer}: {info.type}{SWAP}{new}", lambda: probe.substitutions.pop(layer))
    parent, attr, old = _locate(stepper.experiment.model, info.module_name)
    replacement = nn.LeakyReLU(0.01, inplace=getattr(old, "inplace", False)) if new == "leaky_relu" else nn.GELU()
    setattr(parent, attr, replacement)
    probe.adopt(replacement, info.module_name)
    label = f"{layer}: {info.type}{SWAP}{type(replacement).__name__}"
    return Remedy(stepper.step_index, label, lambda: setattr(parent, attr, old))


def reinit_dead_units(stepper: RemedyTarget, layer: str) -> Remedy:
    """Give the dead units of `layer` fresh incoming weights (He init), a zero bias and no optimizer momentum."""
    history, catalog = stepper.history, stepper.watcher.catalog
    record = history.latest
    if record is None:
        raise ValueError("no step has run yet")
    step = record.layer(layer)
    if not step.units or step.dead_unit_ids is None or len(step.dead_unit_ids) == 0:
        raise ValueError(f"{layer} has no dead units to re-initialise")
    units = torch.as_tensor(step.dead_unit_ids, dtype=torch.long)
    feeding = catalog.producers([l.name for l in record.layers], layer, step.units)
    if not feeding:
        raise ValueError(f"found no layer feeding {layer} with one weight row per unit")
    saved = []
    optimizer = stepper.experiment.optimizer
    with torch.no_grad():
        for name in feeding:
            for pname, param in catalog.own_parameters(catalog.layers[name].module_name).items():
                rows = units.to(param.device)
                saved.append((param, rows, param[rows].clone(), _state_rows(optimizer, param, rows)))
                if pname == "weight" and param.dim() >= 2:
                    fan_in = param[0].numel()
                    param[rows] = torch.randn_like(param[rows]) * math.sqrt(2.0 / fan_in)
                elif pname == "weight":  # a norm layer's scale
                    param[rows] = 1.0
                else:
                    param[rows] = 0.0
                for buffer in _state_buffers(optimizer, param):
                    buffer[rows] = 0.0

    def undo() -> None:
        with torch.no_grad():
            for param, rows, values, state in saved:
                param[rows] = values
                for buffer, old in zip(_state_buffers(optimizer, param), state):
                    buffer[rows] = old

    word = "inactive" if inactive_not_dead(step) else "dead"  # a LeakyReLU/GELU swapped in: they get a gradient
    return Remedy(stepper.step_index, f"{layer}: re-initialised {len(units)} {word} units", undo)


def set_hyperparameter(stepper: RemedyTarget, name: str, value: float) -> Remedy:
    """Set lr, momentum or weight_decay on every parameter group (Adam's momentum is beta1)."""
    if name not in HYPERPARAMETERS:
        raise ValueError(f"unknown hyperparameter {name!r}; choose one of {', '.join(HYPERPARAMETERS)}")
    optimizer = stepper.experiment.optimizer
    groups = optimizer.param_groups
    if name == "momentum" and _momentum_is_beta1(groups[0]):
        key, old = "betas", [g["betas"] for g in groups]
        for group in groups:
            group["betas"] = (value, group["betas"][1])
    elif name in groups[0]:
        key, old = name, [g[name] for g in groups]
        for group in groups:
            group[name] = value
    else:
        raise ValueError(f"{type(optimizer).__name__} has no {name}")

    def undo() -> None:
        for group, previous in zip(groups, old):
            group[key] = previous

    before = old[0][0] if key == "betas" else old[0]
    return Remedy(stepper.step_index, f"{name} {before:g} -> {value:g}", undo)


def lower_learning_rate(stepper: RemedyTarget, factor: float = 10.0) -> Remedy:
    """Divide the learning rate by `factor` (the first group's rate sets the new one for every group)."""
    if not factor > 0:
        raise ValueError(f"the learning rate can only be divided by a positive number, not {factor:g}")
    lr = stepper.experiment.optimizer.param_groups[0]["lr"]
    return set_hyperparameter(stepper, "lr", lr / float(factor))


def hyperparameters(stepper: RemedyTarget) -> dict[str, float | None]:
    """The values now in force: lr, momentum (Adam's beta1), weight_decay and the gradient clipping (None: absent)."""
    group = stepper.experiment.optimizer.param_groups[0]
    return {
        "lr": group.get("lr"),
        "momentum": _momentum(group),
        "weight_decay": group.get("weight_decay"),
        "clip": stepper.clip_grad_norm,
    }


def set_gradient_clipping(stepper: RemedyTarget, max_norm: float | None) -> Remedy:
    """Clip the total gradient norm to `max_norm` before each update (None turns clipping off)."""
    previous = stepper.clip_grad_norm
    stepper.clip_grad_norm = max_norm

    def undo() -> None:
        stepper.clip_grad_norm = previous

    label = f"gradient clipping at {max_norm:g}" if max_norm is not None else "gradient clipping off"
    return Remedy(stepper.step_index, label, undo)


# Every remedy by the name a caller asks for it; the arguments follow the target.
REMEDIES: dict[str, Callable[..., Remedy]] = {
    "replace_activation": replace_activation,
    "reinit_dead_units": reinit_dead_units,
    "set_hyperparameter": set_hyperparameter,
    "set_gradient_clipping": set_gradient_clipping,
    "lower_lr": lower_learning_rate,
}


def apply_named(stepper: RemedyTarget, name: str, args: tuple = ()) -> Remedy:
    """Build remedy `name` with `args`; ValueError for an unknown name (the caller applies it)."""
    remedy = REMEDIES.get(name)
    if remedy is None:
        raise ValueError(f"unknown remedy {name!r}; choose one of {', '.join(REMEDIES)}")
    return remedy(stepper, *args)


def _momentum_is_beta1(group: dict) -> bool:
    """Adam-like optimizers have no momentum; their beta1 plays its part."""
    return "momentum" not in group and "betas" in group


def _momentum(group: dict) -> float | None:
    return group["betas"][0] if _momentum_is_beta1(group) else group.get("momentum")


def _functional(new: str, in_place: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    if new == "gelu":
        return F.gelu

    def leaky_relu(x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, 0.01, inplace=in_place)

    return leaky_relu


def _locate(model: nn.Module, module_name: str) -> tuple[nn.Module, str, nn.Module]:
    parent_name, _, attr = module_name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    return parent, attr, getattr(parent, attr)


def _state_buffers(optimizer: torch.optim.Optimizer, param: torch.Tensor) -> list[torch.Tensor]:
    """Optimizer state tensors shaped like `param` (momentum, Adam's moments)."""
    state = optimizer.state.get(param, {})
    return [v for v in state.values() if isinstance(v, torch.Tensor) and v.shape == param.shape]


def _state_rows(optimizer: torch.optim.Optimizer, param: torch.Tensor, rows: torch.Tensor) -> list[torch.Tensor]:
    return [buffer[rows].clone() for buffer in _state_buffers(optimizer, param)]
