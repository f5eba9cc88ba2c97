"""Every rank's per-layer statistics of one step, side by side: what the combined and per-rank views read.

Plain numbers only (no tensors), made after the step's one collective, so the
diagnosis, the report and a recorder can keep it like the rest of a StepRecord.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# The per-layer statistics each rank contributes, in this column order.
STATS = ("count", "mean", "std", "min", "max", "zero_fraction", "nonfinite", "grad_norm", "grad_nonfinite")
COLUMN = {name: i for i, name in enumerate(STATS)}


@dataclass
class RankTable:
    """values[rank, layer, stat]: NaN where a rank did not see that layer (its count is 0) or had no gradient."""

    rank: int  # the process holding this table
    world_size: int
    layers: list[str]  # in this rank's forward order
    values: np.ndarray  # float64 [world_size, len(layers), len(STATS)]
    losses: np.ndarray  # float64 [world_size], NaN where a rank passed no loss
    input_nonfinite: np.ndarray  # bool [world_size]: a rank's input batch held NaN/Inf
    truncated: bool = False  # some rank saw more layers than fit this step; they are missing here

    def of(self, layer: str, stat: str) -> np.ndarray:
        """One statistic of one layer on every rank (NaN where missing)."""
        return self.values[:, self.layers.index(layer), COLUMN[stat]]

    def mean(self, layer: str, stat: str) -> float:
        """The mean over the ranks that have the value."""
        values = self._present(layer, stat)
        return float(values.mean()) if values.size else math.nan

    def max(self, layer: str, stat: str) -> float:
        """The largest value over the ranks that have it."""
        values = self._present(layer, stat)
        return float(values.max()) if values.size else math.nan

    def pooled(self, layer: str) -> tuple[float, float]:
        """Mean and std of the layer's output over every rank's elements together (count-weighted moments)."""
        count, mean, std = (self.of(layer, s) for s in ("count", "mean", "std"))
        seen = count > 0
        total = count[seen].sum()
        if total == 0:
            return math.nan, math.nan
        pooled_mean = float((count[seen] * mean[seen]).sum() / total)
        second = float((count[seen] * (std[seen] ** 2 + mean[seen] ** 2)).sum() / total)
        return pooled_mean, math.sqrt(max(second - pooled_mean**2, 0.0))

    def to_dict(self) -> dict:
        """JSON-safe: per layer, each statistic's per-rank values with their mean and max (null for NaN)."""
        layers = {}
        for name in self.layers:
            layers[name] = {
                stat: {
                    "per_rank": [_safe(v) for v in self.of(name, stat)],
                    "mean": _safe(self.mean(name, stat)),
                    "max": _safe(self.max(name, stat)),
                }
                for stat in STATS
            }
        return {
            "world_size": self.world_size,
            "rank": self.rank,
            "losses": [_safe(v) for v in self.losses],
            "layers": layers,
            "truncated": self.truncated,
        }

    def _present(self, layer: str, stat: str) -> np.ndarray:
        values = self.of(layer, stat)
        return values[np.isfinite(values) & (self.of(layer, "count") > 0)]


def _safe(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
