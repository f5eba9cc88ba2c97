"""The one collective a step: every rank's per-layer statistics gathered to every rank as one flat tensor.

Each rank packs its StepRecord into a [1 + capacity, len(STATS) + 1] float64
tensor (a header row, then one row per layer, keyed by a hash of the layer's
name so ranks whose forwards differ still line up by name) and takes part in
one `all_gather`. The capacity is the same on every rank without asking: it
starts from the model's module count, and grows, for the next step, to what
the largest rank reported, since every rank sees every header. Under FSDP2,
a last block of rows holds the squared norms of this rank's parameter shards
(the same parameters, in the same order, on every rank), from which each rank
puts the full parameters' norms into its record (see shards.py).
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from bpviz.engine.distributed import shards
from bpviz.engine.distributed.context import rank_and_world
from bpviz.engine.record.rank_table import COLUMN, STATS, RankTable
from bpviz.engine.record.records import LayerStep, StepRecord

_WIDTH = len(STATS) + 1  # the name hash, then the statistics
_NOTHING = -1.0  # a header's layer count when packing failed: the rank still joins the collective


class RankExchange:
    """Gathers the ranks' step statistics; every rank must call `exchange` once per step, like any collective."""

    def __init__(self, model: nn.Module, group: dist.ProcessGroup | None = None) -> None:
        self.group = group
        self.rank, self.world_size = rank_and_world(group)
        # Layers are module calls plus functional activations: twice the modules covers most models.
        self.capacity = 2 * sum(1 for _ in model.modules()) + 8
        self._names: dict[float, str] = {}  # key -> layer name, for every layer this rank has seen
        self._keys: dict[str, float] = {}  # and back
        self.device = _collective_device(group)
        self._model = model
        sharded = shards.sharded_parameters(model)
        self._sharded, self._replicas = list(sharded), list(sharded.values())

    @staticmethod
    def active(group: dist.ProcessGroup | None = None) -> bool:
        """Whether this process is one of several ranks, so there is something to combine."""
        return rank_and_world(group)[1] > 1

    def exchange(self, record: StepRecord) -> RankTable:
        """Every rank's statistics of this step; raises only if the collective itself fails."""
        capacity = self.capacity  # _unpack may grow it for the next step
        try:
            mine = self._pack(record)
        except Exception:  # never leave the other ranks waiting in the collective
            mine = np.zeros((1 + capacity + len(self._sharded), _WIDTH))
            mine[0, 0] = _NOTHING
            mine[1 + capacity :] = math.nan  # no shard norms from this rank
        local = torch.from_numpy(mine).to(self.device)
        gathered = [torch.empty_like(local) for _ in range(self.world_size)]
        dist.all_gather(gathered, local, group=self.group)
        everything = torch.stack(gathered).cpu().numpy()
        table = self._unpack(everything[:, : 1 + capacity], record)
        if self._sharded:
            block = everything[:, 1 + capacity :, : shards.WIDTH]
            shards.combine(record, self._sharded, self._replicas, block, self._model)
        return table

    def _pack(self, record: StepRecord) -> np.ndarray:
        packed = np.zeros((1 + self.capacity + len(self._sharded), _WIDTH))
        if self._sharded:
            packed[1 + self.capacity :, : shards.WIDTH] = shards.shard_rows(record, self._sharded)
        packed[0, :3] = (
            len(record.layers),
            record.loss if record.loss is not None else math.nan,
            float(any(f.input_nonfinite for f in record.forwards)),
        )
        layers = record.layers[: self.capacity]
        if layers:
            packed[1 : 1 + len(layers)] = [[self._key(layer.name), *_layer_row(layer)] for layer in layers]
        return packed

    def _key(self, name: str) -> float:
        """A 53-bit hash of the layer name: exact in float64, the same on every rank."""
        key = self._keys.get(name)
        if key is None:
            key = float(int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big") >> 11)
            self._keys[name], self._names[key] = key, name
        return key

    def _unpack(self, gathered: np.ndarray, record: StepRecord) -> RankTable:
        counts = gathered[:, 0, 0]
        rows = [rank_rows[1 : 1 + int(min(max(count, 0), self.capacity))] for rank_rows, count in zip(gathered, counts)]
        mine = rows[self.rank][:, 0]  # this rank's layers that fit, in the order of record.layers
        index = {layer.name: i for i, layer in enumerate(record.layers)}
        # The usual case, every rank's layers in this rank's order, is one block copy per rank; only ranks
        # whose layers differ are lined up row by row (a layer no rank here saw before has no name and is left out).
        uneven = [r for r, rank_rows in enumerate(rows) if not np.array_equal(rank_rows[:, 0], mine)]
        for r in uneven:
            for key in rows[r][:, 0].tolist():
                name = self._names.get(key)
                if name is not None:
                    index.setdefault(name, len(index))
        values = np.full((self.world_size, len(index), len(STATS)), math.nan)
        values[:, :, COLUMN["count"]] = 0.0
        for r, rank_rows in enumerate(rows):
            if r not in uneven:
                values[r, : len(mine)] = rank_rows[:, 1:]
                continue
            for row in rank_rows:
                i = index.get(self._names.get(float(row[0]), ""))
                if i is not None:
                    values[r, i] = row[1:]
        truncated = bool(counts.max() > self.capacity)
        if truncated:
            self.capacity = 2 * int(counts.max())
        return RankTable(
            rank=self.rank,
            world_size=self.world_size,
            layers=list(index),
            values=values,
            losses=gathered[:, 0, 1].copy(),
            input_nonfinite=gathered[:, 0, 2] > 0,
            truncated=truncated,
        )


def _layer_row(layer: LayerStep) -> list[float]:
    """The layer's statistics in STATS order; a layer no gradient reached has NaN there."""
    count = float(math.prod(layer.shape))
    grad = layer.grad_norm if layer.grad_norm is not None else math.nan
    return [
        count,
        layer.mean,
        layer.std,
        layer.min,
        layer.max,
        layer.zero_fraction,
        float(layer.nonfinite),
        grad,
        float(layer.grad_nonfinite),
    ]


def _collective_device(group: dist.ProcessGroup | None) -> torch.device:
    """CPU for gloo/MPI (also a gloo group beside NCCL); otherwise this process's accelerator, as NCCL needs."""
    backend = str(dist.get_backend(group))
    if "gloo" in backend or "mpi" in backend:
        return torch.device("cpu")
    accelerator = torch.accelerator.current_accelerator(check_available=True)
    if accelerator is None:
        return torch.device("cpu")
    return torch.device(accelerator.type, torch.accelerator.current_device_index())
