"""The run file each rank records into: one file per rank, all named from one base chosen by rank 0."""

from __future__ import annotations

from pathlib import Path

import torch.distributed as dist

from bpviz.engine.distributed.context import rank_and_world, rank_path
from bpviz.engine.runs.writer import target_path


def recording_path(path: str | Path, group: dist.ProcessGroup | None = None) -> str | Path:
    """`path` itself in a single process; otherwise this rank's `RUN.rank{r}.bpviz`.

    A folder gets a dated name, and clocks differ by a second between ranks,
    so rank 0 picks the name and sends it to the others once, when watching
    starts (a collective at construction, none per step).
    """
    rank, world = rank_and_world(group)
    if world <= 1:
        return path
    base = [target_path(path) if rank == 0 else None]
    dist.broadcast_object_list(base, src=dist.get_global_rank(group, 0) if group is not None else 0, group=group)
    return rank_path(base[0], rank, world)
