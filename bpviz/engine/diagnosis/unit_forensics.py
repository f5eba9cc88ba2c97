"""Why units of a ReLU-family layer died: when, how far below zero their input sat, and what pushed them.

A unit's incoming weights and bias live in the *producer*: the layer
feeding the activation whose parameters have one row per unit (the
Linear/Conv, or a norm layer in between); `LayerCatalog.producers` finds it
along each layer's input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from bpviz.engine.observe.catalog import LayerCatalog
from bpviz.engine.record.dead_units import DeadUnitTracker
from bpviz.engine.record.history import History
from bpviz.engine.record.records import StepRecord


@dataclass(frozen=True)
class DeadUnit:
    """One dead unit and the evidence about its death."""

    unit: int
    died_at: int  # first step of its current silent streak
    preact_max: float | None  # largest input it received at the latest step (<= 0 for a dead ReLU)
    bias: float | None  # its current bias in the producer
    weight_norm: float | None  # norm of its current incoming weights
    bias_step: float | None  # the bias change made by the update just before it died


def dead_units(history: History, catalog: LayerCatalog, tracker: DeadUnitTracker, layer: str) -> list[DeadUnit]:
    """The dead units of `layer` at the latest step, with when each died and what its producer looks like."""
    record = history.latest
    step = record.layer(layer)
    if step.dead_unit_ids is None:
        return []
    names = [l.name for l in record.layers]
    feeding = catalog.producers(names, layer, step.units)
    weight = catalog.own_parameters(catalog.layers[feeding[-1]].module_name).get("weight") if feeding else None
    bias = catalog.feeding_bias(names, layer, step.units)
    since = tracker.dead_since.get(layer)
    biases = _bias_history(history, layer) if feeding else {}
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


def _bias_history(history: History, layer: str) -> dict[int, np.ndarray]:
    """The bias feeding `layer`'s units at each step kept (records keep it under `layer`'s name)."""
    return {r.step: r.producer_bias[layer] for r in history.records if layer in r.producer_bias}


def recorded_dead_units(record: StepRecord, layer: str) -> list[DeadUnit]:
    """The dead units of `layer` as a recorded step tells them: when each went silent, its largest input, and the
    bias feeding it then (a run file keeps no weights, so no incoming weight norm, nor the bias's step before)."""
    try:
        step = record.layer(layer)
    except KeyError:
        return []
    if step.dead_unit_ids is None or step.dead_since is None:
        return []  # a run recorded before the steps kept when their units went silent
    bias, preact = record.producer_bias.get(layer), step.unit_preact_max
    return [
        DeadUnit(
            unit=unit,
            died_at=since,
            preact_max=float(preact[unit]) if preact is not None else None,
            bias=float(bias[unit]) if bias is not None else None,
            weight_norm=None,
            bias_step=None,
        )
        for unit, since in zip(step.dead_unit_ids.tolist(), step.dead_since.tolist())
    ]
