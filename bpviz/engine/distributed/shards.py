"""Full-parameter norms under FSDP2: every rank holds a shard, the record holds the whole parameter's norm.

`fully_shard` splits each parameter (and its gradient) across the ranks as a
DTensor; a rank measures its own shard (see context.local_shard), never
through a collective inside a hook. The norm of the whole parameter is the
square root of the sum of the shards' squared norms, and those squares ride
along in the step's one gather (exchange.py), so that the recorded norms, the
update ratios and the findings are the full parameter's on every rank. With
replicated shard groups (HSDP), each shard appears once per replica: the sum
is divided by the number of replicas.
"""

from __future__ import annotations

import math
import sys
from dataclasses import replace

import numpy as np
from torch import nn

from bpviz.engine.record.collect import layer_param_totals
from bpviz.engine.record.records import ParamStep, StepRecord

WIDTH = 3  # squared gradient, weight and update norms of this rank's shard; NaN where not measured


def sharded_parameters(model: nn.Module) -> dict[str, int]:
    """Each parameter split across ranks (a DTensor with a Shard placement) and its replica count."""
    dtensor = sys.modules.get("torch.distributed.tensor")
    if dtensor is None:
        return {}
    found = {}
    for name, param in model.named_parameters():
        if isinstance(param, dtensor.DTensor) and any(p.is_shard() for p in param.placements):
            mesh = param.device_mesh
            found[name] = math.prod(mesh.size(i) for i, p in enumerate(param.placements) if p.is_replicate())
    return found


def shard_rows(record: StepRecord, names: list[str]) -> np.ndarray:
    """[len(names), WIDTH]: this rank's squared shard norms of each sharded parameter, in `names` order."""
    rows = np.full((len(names), WIDTH), math.nan)
    by_name = {p.name: p for p in record.params}
    for i, name in enumerate(names):
        param = by_name.get(name)
        if param is not None:
            rows[i] = [_square(param.grad_norm), param.weight_norm**2, _square(param.update_norm)]
    return rows


def combine(record: StepRecord, names: list[str], replicas: list[int], gathered: np.ndarray, model: nn.Module) -> None:
    """Put the full parameters' norms into `record`: `gathered` is [ranks, len(names), WIDTH] of shard squares.

    A norm no rank measured stays None; the element counts become the full parameter's, like the norms.
    """
    totals = _sum_present(gathered) / np.asarray(replicas, dtype=float)[:, None]
    params = dict(model.named_parameters())
    index = {name: i for i, name in enumerate(names)}
    changed: dict[str, list[ParamStep]] = {}
    steps = []
    for step in record.params:
        i = index.get(step.name)
        if i is not None:
            grad, weight, update = (math.sqrt(v) if math.isfinite(v) else None for v in totals[i])
            step = replace(
                step,
                grad_norm=grad,
                weight_norm=weight if weight is not None else step.weight_norm,
                update_norm=update,
                numel=params[step.name].numel(),  # the DTensor's global element count
            )
            if step.layer is not None:
                changed.setdefault(step.layer, [])
        steps.append(step)
    record.params = steps
    for step in steps:
        if step.layer in changed:
            changed[step.layer].append(step)
    for layer_name, items in changed.items():
        layer_param_totals(record.layer(layer_name), items)


def _square(norm: float | None) -> float:
    return norm * norm if norm is not None else math.nan


def _sum_present(gathered: np.ndarray) -> np.ndarray:
    """Sum over ranks of the finite values; NaN where no rank had one."""
    present = np.isfinite(gathered)
    total = np.where(present, gathered, 0.0).sum(axis=0)
    return np.where(present.any(axis=0), total, math.nan)
