"""Where this process stands in a torch.distributed job, and which module a data-parallel wrapper trains.

Kept apart from the exchange so that naming files per rank and unwrapping a
model work (and are testable) without a process group.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn


def rank_and_world(group: dist.ProcessGroup | None = None) -> tuple[int, int]:
    """(rank, world size) in `group` (the default group when None); (0, 1) outside torch.distributed."""
    if not (dist.is_available() and dist.is_initialized()):
        return 0, 1
    return dist.get_rank(group), dist.get_world_size(group)


def local_shard(tensor: torch.Tensor) -> torch.Tensor:
    """This rank's part of a DTensor (FSDP2 parameters and gradients); any other tensor as it is.

    Measuring the DTensor itself would run collectives inside bpviz's hooks
    (or fail on uneven shards); each rank measures its shard instead.
    """
    dtensor = sys.modules.get("torch.distributed.tensor")  # no DTensor exists before that module is loaded
    if dtensor is not None and isinstance(tensor, dtensor.DTensor):
        return tensor.to_local()
    return tensor


def unwrap(model: nn.Module) -> nn.Module:
    """The user's own module inside DistributedDataParallel/DataParallel, so layers are named as in the model.

    Watching the wrapper would name every layer `module.fc1`; the wrapper's
    forward calls the inner module, whose hooks see every layer just the same.
    """
    while isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        model = model.module
    return model


def rank_path(path: str | Path, rank: int, world_size: int) -> Path:
    """The file rank `rank` writes: `run.bpviz` becomes `run.rank1.bpviz` in a job of several ranks.

    One writer per file (no locking between processes); a single process keeps
    the name it was given, so a script behaves the same before and after it is
    launched with torchrun.
    """
    path = Path(path)
    if world_size <= 1:
        return path
    return path.with_name(f"{path.stem}.rank{rank}{path.suffix}")
