"""Statistics of every layer computed together once per forward, from what the hooks only stashed.

Measuring each layer inside its hook costs some fifteen small tensor
operations per layer, each dispatched on its own; that, not the hooks, is
what made watching expensive. Here a forward hook keeps a reference to the
output and, when the model's forward returns, the statistics of all its
layers are computed at once: the passes over every value (at the economy
level the sum alone, at the full level also the sum of squares, one BLAS
dot product on a CPU where it is twice as fast as a norm, and the
extremes), and the sample-based shares, extremes, histograms and (economy)
sums of squares of all layers from one stacked strided sample, binned with
one `bincount`. NaN/Inf is exact from the sums, read on the host once they
arrive (see record/collect.call_finite), or for a ReLU at the economy level
from its input's per-unit maxima: an infinity norm would say it directly,
but costs fifty times a dot product on a CPU.

The outputs are settled when the forward returns, not when the step ends:
held through the backward pass, they kept it from reusing their memory
(thousands of fresh pages faulted in per backward of a small CNN).
Gradients are measured in their hook for the same reason, while they are
still in the cache, with the same functions for a batch of one.

A stashed tensor that was modified in place after its hook (an in-place
ReLU after a Linear, a residual `out += x` on a BatchNorm output) would give
statistics of the wrong values. Its version counter tells: a layer's first
forward is measured in its hook and only checked here; a layer whose output
changed in place is measured in its hook from then on (`LayerCatalog`).
Measuring in the hook is the same computation for a batch of one, so both
ways give the same numbers.

Nothing here syncs with the device: sizes are Python numbers, and the few
per-layer constants go to the device from pinned memory without blocking.
"""

from __future__ import annotations

import math

import torch

from bpviz.engine.config import Config
from bpviz.engine.made_once import MadeOnce
from bpviz.engine.observe import stats
from bpviz.engine.observe.catalog import LayerCatalog
from bpviz.engine.observe.guard import MeasurementGuard
from bpviz.engine.observe.pending import ActivationCall, GradCall, PendingStep, Stash


def settle(
    pending: PendingStep,
    config: Config,
    catalog: LayerCatalog,
    guard: MeasurementGuard,
    exact: bool,
    end_of_step: bool = False,
) -> None:
    """Fill in the statistics of every stashed activation call of `pending` and let go of the stashed tensors.

    `exact`: the full level (see settle_activations for what the economy level estimates; NaN/Inf stays
    exact at both). Called as each forward returns and once
    more at `end_of_step`, which is when the layers found unchanged become deferred: a layer called in
    two forwards of its first step (alone, then inside the model, where its output is overwritten) is
    measured in its hook in both.
    """
    calls = [c for c in pending.calls if c.stash is not None]
    for call in calls:
        _check_version(call.stash, catalog, guard, pending)
    if end_of_step:
        catalog.checked_in_place |= pending.checked
    if not calls:
        return
    with torch._C.DisableTorchFunction(), torch.no_grad():
        for group in _by_device(calls):
            _guarded(group, guard, lambda items: settle_activations(items, config, exact))
    for call in calls:
        call.stash = None
    pending.stashed_bytes = 0
    # what failed to be measured is in the guard; the rest of the step goes on without it
    pending.calls = [c for c in pending.calls if c.scalars is not None]


def settle_backward(
    pending: PendingStep, config: Config, catalog: LayerCatalog, guard: MeasurementGuard, exact: bool
) -> None:
    """Measure the gradients stashed since the last call together, check every gradient's version, let go.

    Called as each backward ends and when the step is taken (a backward that raised ends without it).
    A gradient measured in its hook (large, or at first sight) is only version-checked here: one that the
    backward changed in place after its hook is measured in its hook from then on.
    """
    calls, pending.stashed_grads = pending.stashed_grads, []
    for call in calls:
        _check_version(call.stash, catalog, guard, pending)
    waiting = [c for c in calls if c.scalars is None]
    if waiting:
        pending.stashed_bytes -= sum(c.stash.nbytes for c in waiting)
        with torch._C.DisableTorchFunction(), torch.no_grad():
            for group in _by_device(waiting):
                _guarded(group, guard, lambda items: settle_gradients(items, config, exact))
    for call in calls:
        call.stash = None
    # what failed to be measured is in the guard; the rest of the step goes on without it
    pending.grads = [g for g in pending.grads if g.scalars is not None]


def _guarded(items: list, guard: MeasurementGuard, measure) -> None:
    """Measure all items at once; when that fails, each on its own, so an odd tensor costs only its own statistics."""
    try:
        measure(items)
        return
    except Exception:
        pass
    for item in items:
        with guard.catch(item.stash.key[0]):
            measure([item])


def _check_version(stash: Stash, catalog: LayerCatalog, guard: MeasurementGuard, pending: PendingStep) -> None:
    pending.checked.add(stash.key)
    if stash.changed() and stash.key not in catalog.changed_in_place:
        catalog.changed_in_place.add(stash.key)
        if not stash.measured:  # deferred and then overwritten: the statistics read the changed values
            layer, phase = stash.key
            guard.errors.setdefault(
                f"{layer}: its {phase} tensor was changed in place after its hook, so one step's statistics "
                "read the changed values; it is measured in its hook from now on",
                1,
            )


def _by_device(items: list) -> list[list]:
    groups: dict[torch.device, list] = {}
    for item in items:
        groups.setdefault(item.stash.tensor.device, []).append(item)
    return list(groups.values())


def _to_device(values: list[float], device: torch.device) -> torch.Tensor:
    """Per-layer constants on `device`; from pinned memory and without blocking when that is a GPU."""
    host = torch.tensor(values, dtype=torch.float32)
    if device.type != "cuda":
        return host.to(device)
    return host.pin_memory().to(device, non_blocking=True)


DOT_LIMIT = 1 << 17  # longer tensors are summed with .sum(); shorter ones with a dot product
_units: MadeOnce[torch.Tensor] = MadeOnce(16)


def _unit_vector(length: int, device: torch.device) -> torch.Tensor:
    """`1 / SUM_UNIT` repeated, at least `length` long: dotted with a tensor, its sum in the unit sums are kept in."""
    size = max(length, DOT_LIMIT)
    return _units.get((size, device), lambda: torch.full((size,), 1.0 / stats.SUM_UNIT, device=device))[:length]


def exact_sums(flats: list[torch.Tensor]) -> torch.Tensor:
    """Each flat float32 tensor's sum over every value, in units of `stats.SUM_UNIT` (so that only NaN/Inf makes
    it non-finite): a dot product, several times faster than .sum() on a CPU for tensors that fit in the cache;
    beyond that both read memory at the same speed and .sum() reads half as much."""
    return stats.as_vector([_sum(flat) for flat in flats])


def finite_sum(tensor: torch.Tensor, wide: torch.dtype) -> torch.Tensor:
    """A sum of `tensor` that is not finite exactly when a value is NaN/Inf (unless finite ones overflow `wide`):
    a contiguous float32 one on a CPU short enough for the dot product in units of `stats.SUM_UNIT` (a fifth of
    the time of a sum in double), else summed in `wide` (see Probe._input_sum)."""
    tensor = tensor.detach()
    if tensor.dtype == torch.float32 and tensor.device.type == "cpu" and tensor.numel() <= DOT_LIMIT:
        if tensor.is_contiguous():  # flattened without a copy
            return _sum(tensor.reshape(-1))
    return tensor.sum(dtype=wide)  # a strided one (x.transpose(1, 2)) summed where it lies: reshaped, it was copied


def _sum(flat: torch.Tensor) -> torch.Tensor:
    n = flat.numel()
    if n > DOT_LIMIT or flat.device.type != "cpu":
        # finite values overflow this float32 sum when they average past 3.4e38 over their count (README, Speed)
        return flat.sum() * (1.0 / stats.SUM_UNIT)
    return torch.dot(flat, _unit_vector(n, flat.device))


def squares_and_sums(flats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Each flat float32 tensor's exact sum of squares and sum, as two vectors."""
    return stats.squared_norms(flats), exact_sums(flats)


_columns: MadeOnce[torch.Tensor] = MadeOnce(256)
_paddings: MadeOnce[torch.Tensor] = MadeOnce(64)


class _Stacked:
    """One strided sample of each tensor as the rows of one matrix, so every per-layer statistic is one
    row-wise operation for all layers (a gather or scatter per value costs more than the statistic on a CPU).

    Rows shorter than the longest are padded with zeros (`padded`); `_padding_at` moves them out of the
    way of each statistic.
    """

    def __init__(self, flats: list[torch.Tensor], max_values: int) -> None:
        samples = [stats.histogram_sample(f, max_values) for f in flats]
        self.sizes = [s.numel() for s in samples]
        self.count = len(samples)
        self.padded = len(set(self.sizes)) > 1
        self.values = _padded_rows(samples, self.sizes) if self.padded else torch.stack(samples)

    def count_at_least(self, distances: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
        """Per row, how many real entries of `distances` (a matrix like `values`, NaN where a value was
        NaN) are at least the row's threshold (a column), as floats. In float arithmetic, like the
        histogram: a comparison and a mask cost more than the whole count on a CPU. `d - t` is exactly 0
        when d == t, so its sign says d >= t; NaN and the padding (made NaN) count as below."""
        margins = distances - thresholds
        if self.padded:
            margins.add_(_padding_at(tuple(self.sizes), margins.device, math.nan))
        return margins.nan_to_num_(-1.0).sign_().add_(1.0).clamp_(max=1.0).sum(dim=1)

    def column(self, per_row: list[float]) -> torch.Tensor:
        """Per-row constants as a column, to broadcast over each row; the same layers ask for the same
        constants (ranges, sizes) step after step, so each column is made once."""
        device = self.values.device
        return _columns.get((tuple(per_row), device), lambda: _to_device(per_row, device).unsqueeze(1))

    def extremes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Each row's smallest and largest real value: the padding pushed out of reach by adding +inf to it
        (one arithmetic pass; a `where` on a mask costs five times as much on a CPU)."""
        values = self.values
        if not self.padded:
            return values.amin(dim=1), values.amax(dim=1)
        beyond = _padding_at(tuple(self.sizes), values.device, math.inf)
        return (values + beyond).amin(dim=1), (values - beyond).amax(dim=1)

    def nonzero(self) -> torch.Tensor:
        """Per row, how many values are not zero (NaN counts; the zero padding does not), as floats."""
        return self.values.bool().sum(dim=1).to(self.values.dtype)  # bool(): a third of the time of `!= 0`

    def part(self, index: int) -> torch.Tensor:
        return self.values[index, : self.sizes[index]]


_zeros: MadeOnce[torch.Tensor] = MadeOnce(16)


def _padded_rows(samples: list[torch.Tensor], sizes: list[int]) -> torch.Tensor:
    """The samples as the rows of one matrix, each padded with zeros to the longest: one concatenation of the
    samples and slices of one zero vector, at a third of pad_sequence's time on a CPU (a fifth where all rows
    are of one length and need no padding: then they are stacked)."""
    longest, first = max(sizes), samples[0]
    key = (longest, first.dtype, first.device)
    zeros = _zeros.get(key, lambda: torch.zeros(longest, dtype=first.dtype, device=first.device))
    parts = []
    for sample, size in zip(samples, sizes):
        parts.append(sample)
        if size < longest:
            parts.append(zeros[: longest - size])
    return torch.cat(parts).view(len(samples), longest)


def _padding_at(sizes: tuple[int, ...], device: torch.device, fill: float) -> torch.Tensor:
    """`fill` where the padded matrix holds padding, 0 at the real values: added, it moves the padding
    out of a statistic's way (+inf: out of a minimum's; NaN: into a count of its own)."""

    def make() -> torch.Tensor:
        padding = torch.arange(max(sizes)).unsqueeze(0) >= torch.tensor(sizes).unsqueeze(1)
        return torch.zeros(padding.shape).masked_fill_(padding, fill).to(device)

    return _paddings.get((sizes, device, fill), make)


def _saturated_counts(stacked: _Stacked, bounds: list[tuple[float, float] | None], margin: float) -> torch.Tensor:
    """Per row, how many sampled values lie within `margin` of their layer's bounds (0 for unbounded layers)."""
    if all(b is None for b in bounds):
        return torch.zeros(stacked.count, dtype=stacked.values.dtype, device=stacked.values.device)
    centers = [0.0 if b is None else (b[0] + b[1]) / 2 for b in bounds]
    inners = [math.inf if b is None else (b[1] - b[0]) * (0.5 - margin) for b in bounds]  # inf: never saturated
    return stacked.count_at_least((stacked.values - stacked.column(centers)).abs_(), stacked.column(inners))


def batched_histogram(stacked: _Stacked, values: torch.Tensor, ranges: list[tuple[float, float]], bins: int):
    """Every row's `stats.histogram` layout ([bins counts, below, above, NaN/Inf]) with one bincount.

    Float arithmetic only, mostly in place: on a CPU a `where`, a comparison or a mask costs five to
    fifteen times an addition. NaN/Inf and the padding are made NaN (`x - x` is NaN exactly for them),
    binned with the values below the range and counted apart.
    """
    lo = stacked.column([r[0] for r in ranges])
    hi = stacked.column([r[1] for r in ranges])
    if stacked.padded:
        values = values + _padding_at(tuple(stacked.sizes), values.device, math.nan)
    finite = values - values  # NaN at NaN/Inf and at the padding, 0 elsewhere
    unbinned = finite.nan_to_num(1.0).sum(dim=1, keepdim=True)  # 1 at each NaN: counted without a comparison
    finite.add_(values)  # the values, NaN where they cannot be binned
    slot = (finite - lo).mul_(bins / (hi - lo)).floor_().clamp_(-1, bins - 1)  # -1: below the range
    # past the upper edge: "above" (bins); the edge itself stays in the last bin, like histc
    slot.add_(finite.sub_(hi).clamp_(0, 1).ceil_()).nan_to_num_(-1.0)
    width = bins + 2
    slot.add_(stacked.column([row * width + 1.0 for row in range(stacked.count)]))
    # int32 slots: a quarter of the conversion's time and a third of bincount's of int64 ones, on a CPU
    counts = torch.bincount(slot.reshape(-1).int(), minlength=stacked.count * width)
    counts = counts.reshape(stacked.count, width).to(torch.float32)
    below = counts[:, :1] - unbinned
    nonfinite = unbinned
    if stacked.padded:
        nonfinite = unbinned - stacked.column([max(stacked.sizes) - size for size in stacked.sizes])
    return torch.cat([counts[:, 1 : bins + 1], below, counts[:, bins + 1 :], nonfinite], dim=1)


def take_passes(stash: Stash, cfg: Config, exact: bool) -> None:
    """Take the passes over the whole tensor now (in the hook, while it is in the cache) and keep only a copy
    of its sample for the rest, which `settle_activations` computes with the other layers'."""
    flat = stash.tensor.reshape(-1)
    if exact:
        squares, sums = squares_and_sums([flat])
        low, high = torch.aminmax(flat)
        stash.passes = (squares, sums, low.reshape(1), high.reshape(1))
    else:
        stash.passes = (exact_sums([flat]),) if stash.exact_sum else ()
    stash.measured = True
    stash.tensor = stats.histogram_sample(flat, cfg.histogram_sample).clone()  # as it is now, not as overwritten


def _exact_passes(fresh: list[torch.Tensor], taken: list[Stash], exact: bool) -> list[torch.Tensor]:
    """The passes over every value as vectors, a row per tensor (the `fresh` ones computed here, then those
    `taken` in their hook): [squares, sums, lows, highs] when `exact`, otherwise [sums]; [] for no tensor."""
    computed = []
    if fresh:
        if exact:
            extremes = [torch.aminmax(f) for f in fresh]
            computed = [
                *squares_and_sums(fresh),
                torch.stack([e[0] for e in extremes]),
                torch.stack([e[1] for e in extremes]),
            ]
        else:
            computed = [exact_sums(fresh)]
    if not taken:
        return computed
    pieces = [[computed[k]] if fresh else [] for k in range(len(taken[0].passes))]
    for stash in taken:
        for k, value in enumerate(stash.passes):
            pieces[k].append(value)
    return [torch.cat(piece) for piece in pieces]


def _whole_last(items: list, max_values: int) -> tuple[list, list]:
    """`items` split into those whose tensor is larger than its sample, then those whose sample is every value:
    the rows of the stacked sample give the second kind's passes exactly, with no pass of their own (on a deep
    narrow network, one dot product and one minimum and maximum per layer cost more than the stacked sample)."""
    large, whole = [], []
    for item in items:
        (whole if item.stash.tensor.numel() <= max_values else large).append(item)
    return large, whole


def settle_activations(calls: list[ActivationCall], cfg: Config, exact: bool) -> None:
    """The statistics of these calls' stashed outputs, into each call (still on the device).

    At the full level every call's sum, sum of squares and extremes are exact. At the economy level only
    the sum is, for NaN/Inf, and not even that for a ReLU whose input's per-unit maxima already tell
    (see collect.call_finite); the rest comes from the sample, its sums scaled to the whole tensor. A
    tensor that fits in its sample is its sample, so its row's statistics are over every value.
    """
    # rows in this order: passes computed here over tensors larger than their sample, passes taken in the hook,
    # then every other call's from its row of the sample: tensors that fit in it whole (exact), and at the
    # economy level the ReLUs whose sum is estimated from the sample (their input's maxima say NaN/Inf)
    fresh = [c for c in calls if c.stash.passes is None and c.stash.exact_sum]
    large, whole = _whole_last(fresh, cfg.histogram_sample)
    taken = [c for c in calls if c.stash.passes]
    estimated = [c for c in calls if not c.stash.exact_sum and not c.stash.passes]
    calls = large + taken + whole + estimated
    first = len(large) + len(taken)
    flats = [c.stash.tensor.reshape(-1) for c in calls]
    passes = _exact_passes(flats[: len(large)], [c.stash for c in taken], exact)
    stacked = _Stacked(flats, cfg.histogram_sample)
    values = stacked.values
    nonzero = stacked.nonzero()
    saturated = _saturated_counts(stacked, [c.layer.bounds for c in calls], cfg.saturation_margin)
    # each sample's sums scaled to its whole tensor (by 1 for a tensor that fits in it); the padding is zeros
    scale = stacked.column([c.count / size for c, size in zip(calls, stacked.sizes)]).squeeze(1)
    rest = values[first:]
    # row sums in the unit of the exact sums, as one matrix-vector product
    row_sums = torch.mv(rest, _unit_vector(values.shape[1], values.device)) * scale[first:]
    lows, highs = stacked.extremes()  # the sample's: the host makes them NaN where the tensor holds NaN/Inf
    if exact:
        rows = [(rest * rest).sum(dim=1) * scale[first:], row_sums, lows[first:], highs[first:]]
        squares, sums, lows, highs = [torch.cat(pair) for pair in zip(passes, rows)] if first else rows
    else:
        squares = (values * values).sum(dim=1) * scale
        sums = torch.cat([passes[0], row_sums]) if first else row_sums
    scalars = torch.stack([sums, squares, lows, highs, nonzero, saturated], dim=1)
    histograms = None
    if any(c.stash.hist_range is not None for c in calls):
        ranges = [c.stash.hist_range or (0.0, 1.0) for c in calls]
        histograms = batched_histogram(stacked, values, ranges, cfg.histogram_bins)
    for index, (call, row) in enumerate(zip(calls, scalars.unbind(0))):
        call.scalars = row
        call.sample_size = stacked.sizes[index]
        call.exact = stats.Exact.ALL if exact else stats.Exact.SUM if call.stash.exact_sum else stats.Exact.NONE
        if call.stash.hist_range is not None:
            call.histogram = histograms[index]
        elif call.stash.keep_sample:
            call.sample = stats.histogram_sample(stacked.part(index), cfg.first_sight_sample)


def _joined(*parts: torch.Tensor | None) -> torch.Tensor:
    """The vectors given, end to end, skipping None; a lone one as it is."""
    present = [part for part in parts if part is not None]
    return present[0] if len(present) == 1 else torch.cat(present)


def settle_gradients(grads: list[GradCall], cfg: Config, exact: bool) -> None:
    """[squared norm, sum] and, on detailed steps, the log10 |g| histogram of each gradient.

    The sum is exact at both levels (it says NaN/Inf). At the full level so is the squared norm, and the
    two tell NaN/Inf from a norm that only overflowed (collect.values_finite); at the economy level the
    squared norm of a layer's output gradient comes from its sample, which spares a pass over every
    gradient, the most expensive part of a convolutional step's statistics. The findings judge gradient
    size from the parameters' gradient norms, exact at both levels (update_tracking.py).
    """
    large, whole = _whole_last(grads, cfg.histogram_sample)
    grads, first = large + whole, len(large)
    flats = [g.stash.tensor.reshape(-1) for g in grads]
    detailed = any(g.stash.hist_range is not None for g in grads)
    stacked = _Stacked(flats, cfg.histogram_sample) if detailed or not exact or whole else None
    # the gradients that fit in their sample are summed from its rows, exactly, in the unit of the exact sums
    rest = stacked.values[first:] if whole else None
    row_sums = torch.mv(rest, _unit_vector(rest.shape[1], rest.device)) if whole else None
    if exact:
        large_squares, large_sums = squares_and_sums(flats[:first]) if first else (None, None)
        squares = _joined(large_squares, (rest * rest).sum(dim=1) if whole else None)
        sums = _joined(large_sums, row_sums)
    else:
        scale = stacked.column([f.numel() / size for f, size in zip(flats, stacked.sizes)]).squeeze(1)
        squares = (stacked.values * stacked.values).sum(dim=1) * scale
        sums = _joined(exact_sums(flats[:first]) if first else None, row_sums)
    scalars = torch.stack([squares, sums], dim=1)
    histograms = None
    if detailed:
        log_lo, log_hi = cfg.grad_log10_range
        logs = stats.log10_magnitudes(stacked.values, log_lo)
        histograms = batched_histogram(stacked, logs, [(log_lo, log_hi)] * len(grads), cfg.histogram_bins)
    for index, (grad, row) in enumerate(zip(grads, scalars.unbind(0))):
        grad.scalars = row
        grad.exact_norm = exact or index >= first  # a gradient that fits in its sample has every value's squares
        if grad.stash.hist_range is not None:
            grad.histogram = histograms[index]
