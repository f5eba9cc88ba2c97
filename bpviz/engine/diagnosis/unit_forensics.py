"""Why units of a ReLU-family layer died: when, how far below zero their input sat, and what pushed them.

A unit's incoming weights and bias live in the *producer*: the nearest
layer before the activation, in forward order, whose parameters have one
row per unit (the Linear/Conv feeding it, or a norm layer in between).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from bpviz.engine.record.history import History
from bpviz.engine.observe.probe import Probe
from bpviz.engine.record.dead_units import DeadUnitTracker


@dataclass(frozen=True)
class DeadUnit:
    """One dead unit and the evidence about its death."""

    unit: int
    died_at: int  # first step of its current silent streak
    preact_max: float | None  # largest input it received at the latest step (<= 0 for a dead ReLU)
    bias: float | None  # its current bias in the producer
    weight_norm: float | None  # norm of its current incoming weights
    bias_step: float | None  # the bias change made by the update just before it died


def producers(names: list[str], probe: Probe, layer: str, units: int) -> list[str]:
    """Layers feeding `layer` (names in forward order) whose parameters have one row per unit, nearest first.

    The walk stops at the first Linear/Conv: the layer holding the units' incoming weights.
    The model's structure does not change between steps, so the answer is cached until new layers appear.
    """
    key = (layer, units, len(probe.layers))
    cached = probe.producer_cache.get(key)
    if cached is not None:
        return cached
    found = []
    for name in reversed(names[: names.index(layer)]):
        info = probe.layers[name]
        if info.functional:
            continue
        weight = probe.own_parameters(info.module_name).get("weight")
        if weight is None or weight.shape[0] != units:
            if found:
                break
            continue
        found.append(name)
        if weight.dim() >= 2:  # a Linear/Conv: the units' incoming weights
            break
    probe.producer_cache[key] = found
    return found


def dead_units(history: History, probe: Probe, tracker: DeadUnitTracker, layer: str) -> list[DeadUnit]:
    """The dead units of `layer` at the latest step, with when each died and what its producer looks like."""
    record = history.latest
    step = record.layer(layer)
    if step.dead_unit_ids is None:
        return []
    feeding = producers([l.name for l in record.layers], probe, layer, step.units)
    linear = probe.own_parameters(probe.layers[feeding[-1]].module_name) if feeding else {}
    weight, bias = linear.get("weight"), linear.get("bias")
    since = tracker.dead_since.get(layer)
    biases = _bias_history(history, feeding[-1]) if feeding else {}
    result = []
    for unit in step.dead_unit_ids.tolist():
        died = int(since[unit]) if since is not None else record.step
        before, after = biases.get(died - 1), biases.get(died)
        bias_step = float(after[unit] - before[unit]) if before is not None and after is not None else None
        result.append(
            DeadUnit(
                unit=unit,
                died_at=died,
                preact_max=float(step.unit_preact_max[unit]) if step.unit_preact_max is not None else None,
                bias=float(bias[unit].detach()) if bias is not None else None,
                weight_norm=float(torch.linalg.vector_norm(weight[unit].detach())) if weight is not None else None,
                bias_step=bias_step,
            )
        )
    return result


def _bias_history(history: History, producer: str) -> dict[int, np.ndarray]:
    return {r.step: r.producer_bias[producer] for r in history.records if producer in r.producer_bias}
