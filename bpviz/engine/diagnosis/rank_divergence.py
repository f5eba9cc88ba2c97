"""rank_divergence: one rank whose statistics drift from the others' (a NaN, a bad data shard, desynced state).

Under data parallelism every rank runs the same model on batches drawn from
the same data, so a layer's output scale and gradient norm agree across ranks
up to batch noise. A rank far off the others is a problem on that rank: its
shard, its preprocessing, its buffers. Like nan_or_inf this reports the first
layer where it shows (forward order for activations, backward order for
gradients): everything after it differs only as a consequence.

With two ranks both are equally far from each other; the one that moved away
from its own recent values is the odd one. When neither did, the finding names
the layer without blaming a rank.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from bpviz.engine.diagnosis.rule import Context, Observation
from bpviz.engine.record.rank_table import RankTable
from bpviz.engine.record.records import StepRecord

KIND = "rank_divergence"
KINDS = (KIND,)
STATEFUL = True
_RECENT = 5  # earlier steps a rank's own values are compared with, to tell which of two ranks moved
EXPLANATION = (
    "Data-parallel ranks run the same model on batches from the same data, so their layers' statistics agree "
    "up to batch noise. One rank far from the others has something the others do not: a different or corrupt "
    "data shard, its own preprocessing, a NaN in its batch, or state that is no longer in sync."
)
REMEDIES = [
    "Check that rank's data: the DistributedSampler's shard, per-rank preprocessing or augmentation, NaN in a file.",
    "Check that every rank runs the same code and configuration (seeds, dtype, flags read per rank).",
    "Keep BatchNorm statistics in sync (torch.nn.SyncBatchNorm.convert_sync_batchnorm) and buffers broadcast.",
]


def check(ctx: Context) -> Iterator[Observation]:
    record = ctx.record
    table = record.ranks if record is not None else None
    if table is None or table.world_size < 2:
        return
    found = _nonfinite(table, record) or _drift(ctx, table, record)
    if found is not None:
        yield found


def _nonfinite(table: RankTable, record: StepRecord) -> Observation | None:
    """NaN/Inf on some ranks only: the input batch first, then activations (forward), then gradients."""
    step = record.step
    bad = table.input_nonfinite
    if bad.any() and not bad.all():
        return _obs(
            None,
            _ranks(bad),
            f"{_ranks_text(bad)} input batch at step {step} holds NaN/Inf; the other ranks' batches were finite.",
        )
    for stat, what in (("nonfinite", "output"), ("grad_nonfinite", "gradient")):
        for layer in _order(table, stat, record):
            flags = table.of(layer, stat) > 0
            if flags.any() and not flags.all():
                return _obs(
                    layer,
                    _ranks(flags),
                    f"NaN/Inf in {layer}'s {what} on {_ranks_text(flags, own=False)} "
                    f"at step {step}, while the other ranks' were finite.",
                )
    return None


def _drift(ctx: Context, table: RankTable, record: StepRecord) -> Observation | None:
    """A rank whose output scale (forward order) or output gradient norm (backward order) is far off the others'."""
    limit = math.log(ctx.config.rank_divergence_ratio)
    past = [r.ranks for r in list(ctx.history.records)[-_RECENT - 1 : -1] if r.ranks is not None]
    for stat, what in (("rms", "output scale (RMS)"), ("grad_norm", "output gradient norm")):
        for layer in _order(table, stat, record):
            logs = _log_values(table, layer, stat)
            if logs is None:
                continue
            gaps = np.array([abs(logs[r] - np.median(np.delete(logs, r))) for r in range(len(logs))])
            if gaps.max() <= limit:
                continue
            suspect = _suspect(gaps, logs, past, layer, stat, limit)
            values = np.exp(logs)
            if suspect is None:
                shown = ", ".join(f"rank {r}: {v:.3g}" for r, v in enumerate(values))
                return _obs(
                    layer,
                    None,
                    f"The ranks disagree on {layer}'s {what} at step {ctx.step} ({shown}), "
                    f"more than {ctx.config.rank_divergence_ratio:g}x apart.",
                    "warning",
                )
            others = float(np.exp(np.median(np.delete(logs, suspect))))
            return _obs(
                layer,
                suspect,
                f"Rank {suspect}'s {what} at {layer} drifted from the other ranks' at step "
                f"{ctx.step}: {values[suspect]:.3g} against {others:.3g} "
                f"({math.exp(gaps[suspect]):.3g}x; limit {ctx.config.rank_divergence_ratio:g}x).",
                "warning",
            )
    return None


def _suspect(gaps, logs, past: list[RankTable], layer: str, stat: str, limit: float) -> int | None:
    """The rank farthest from the others; between equally far ones, the one that left its own recent values."""
    tied = np.flatnonzero(gaps >= gaps.max() - 1e-9)
    if len(tied) == 1:
        return int(tied[0])
    history = [
        h for t in past if layer in t.layers and (h := _log_values(t, layer, stat)) is not None and len(h) == len(logs)
    ]
    if not history:
        return None
    moved = np.abs(logs - np.median(np.vstack(history), axis=0))
    best = int(tied[np.argmax(moved[tied])])
    calm = np.delete(moved[tied], np.argmax(moved[tied]))
    return best if moved[best] > limit / 2 and (calm.size == 0 or calm.max() < moved[best] / 2) else None


def _log_values(table: RankTable, layer: str, stat: str) -> np.ndarray | None:
    """log of the statistic on every rank, or None unless every rank has a finite, positive-or-zero value."""
    if stat == "rms":
        values = np.sqrt(table.of(layer, "mean") ** 2 + table.of(layer, "std") ** 2)
    else:
        values = table.of(layer, stat)
    if not np.isfinite(values).all() or (table.of(layer, "count") == 0).any() or np.all(values == values[0]):
        return None
    floor = 1e-30 + 1e-12 * values.max()  # a rank at exactly 0 while others are not is far off, not undefined
    return np.log(np.maximum(values, floor))


def _order(table: RankTable, stat: str, record: StepRecord) -> list[str]:
    """Forward order for activations, the order autograd reached the layers for gradients."""
    if stat in ("nonfinite", "rms"):
        return table.layers
    return [name for name in record.backward_order if name in table.layers]


def _ranks(flags: np.ndarray) -> int | None:
    """The one rank flagged, or None when several are."""
    hits = np.flatnonzero(flags)
    return int(hits[0]) if len(hits) == 1 else None


def _ranks_text(flags: np.ndarray, own: bool = True) -> str:
    hits = np.flatnonzero(flags).tolist()
    name = f"rank {hits[0]}" if len(hits) == 1 else "ranks " + ", ".join(str(r) for r in hits)
    return f"{name}'s".capitalize() if own else name


def _obs(layer: str | None, rank: int | None, message: str, severity: str = "error") -> Observation:
    return Observation(KIND, severity, layer, message, EXPLANATION, REMEDIES, rank=rank)
