"""Statistics of every layer computed together once per step, from what the hooks only stashed.

Measuring each layer inside its hook costs some fifteen small tensor
operations per layer, each dispatched on its own; that, not the hooks, is
what made watching expensive. Here a hook keeps a reference to the output
(or gradient) and the step's statistics are computed for all layers at once:
exact norms with one multi-tensor kernel (`torch._foreach_norm`), exact
sums with one fast dot product each, and the sample-based shares, extremes
and histograms of all layers from one stacked strided sample, binned with
one `bincount`. NaN/Inf is exact from the sum of squares and the sum (see
`finite_values`): an infinity norm would say it directly, but costs fifty
times a dot product on a CPU.

A stashed tensor that was modified in place after its hook (an in-place
ReLU after a Linear, a residual `out += x` on a BatchNorm output) would give
statistics of the wrong values. Its version counter tells: a layer's first
step is measured in its hook and only checked here; a layer whose output
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
from bpviz.engine.observe import stats
from bpviz.engine.observe.amp import unscale_late
from bpviz.engine.observe.catalog import LayerCatalog
from bpviz.engine.observe.guard import MeasurementGuard
from bpviz.engine.observe.pending import ActivationCall, GradCall, PendingStep, Stash


def settle(pending: PendingStep, config: Config, catalog: LayerCatalog, guard: MeasurementGuard, exact: bool) -> None:
    """Fill in the statistics of every stashed call of `pending` and let go of the stashed tensors.

    `exact`: extremes over every value (the full level); otherwise they come from each layer's strided
    sample, while the mean, the spread and NaN/Inf stay exact.
    """
    calls = [c for c in pending.calls if c.stash is not None]
    grads = [g for g in pending.grads if g.stash is not None]
    for item in (*calls, *grads):
        _check_version(item.stash, catalog, guard)
    with torch._C.DisableTorchFunction(), torch.no_grad():
        if pending.unscale_late:
            unscale_late(pending.grads, pending.grad_unscale)
        for group in _by_device([c for c in calls if not c.stash.measured]):
            _guarded(group, guard, lambda items: settle_activations(items, config, exact))
        for group in _by_device([g for g in grads if not g.stash.measured]):
            _guarded(group, guard, lambda items: settle_gradients(items, config))
    for item in (*calls, *grads):
        item.stash = None
    pending.stashed_bytes = 0
    # what failed to be measured is in the guard; the rest of the step goes on without it
    pending.calls = [c for c in pending.calls if c.scalars is not None]
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


def _check_version(stash: Stash, catalog: LayerCatalog, guard: MeasurementGuard) -> None:
    catalog.checked_in_place.add(stash.key)
    if stash.tensor._version != stash.version and stash.key not in catalog.changed_in_place:
        catalog.changed_in_place.add(stash.key)
        if not stash.measured:  # deferred and then overwritten: this step read the changed values
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


_ONES_LIMIT = 1 << 22  # longer tensors are summed with .sum(); shorter ones with a dot product against ones
_ones: dict[tuple[int, torch.device], torch.Tensor] = {}


def exact_sums(flats: list[torch.Tensor]) -> torch.Tensor:
    """Each flat float32 tensor's sum: a dot product with ones, many times faster than .sum() on a CPU."""
    sums = []
    for flat in flats:
        n = flat.numel()
        if n > _ONES_LIMIT:
            sums.append(flat.sum())
            continue
        ones = _ones.get((n, flat.device))
        if ones is None:
            if len(_ones) > 256:
                _ones.clear()
            ones = _ones[(n, flat.device)] = torch.ones(n, device=flat.device)
        sums.append(torch.dot(flat, ones))
    return torch.stack(sums)


def finite_values(squares: torch.Tensor, sums: torch.Tensor) -> torch.Tensor:
    """True where a tensor holds no NaN/Inf, from its sum of squares and its sum.

    NaN or Inf make the sum of squares non-finite. So do huge finite values
    (|x| > ~1e19 overflows float32 squares), but then the plain sum stays
    finite: an infinite square sum with a finite sum is such an overflow.
    """
    return torch.isfinite(squares) | (torch.isinf(squares) & torch.isfinite(sums))


_masks: dict[tuple[tuple[int, ...], torch.device], torch.Tensor] = {}


class _Stacked:
    """One strided sample of each tensor as the rows of one matrix, so every per-layer statistic is one
    row-wise operation for all layers (a gather or scatter per value costs more than the statistic on a CPU).

    Rows shorter than the longest are padded with zeros; `valid` marks the real values (None: all are).
    """

    def __init__(self, flats: list[torch.Tensor], max_values: int) -> None:
        samples = [stats.histogram_sample(f, max_values) for f in flats]
        self.sizes = [s.numel() for s in samples]
        self.values = torch.nn.utils.rnn.pad_sequence(samples, batch_first=True)
        self.count = len(samples)
        self.valid = None if len(set(self.sizes)) == 1 else _mask(tuple(self.sizes), self.values.device)

    def count_where(self, condition: torch.Tensor) -> torch.Tensor:
        """Per row, how many real values meet `condition` (a bool matrix like `values`)."""
        if self.valid is not None:
            condition = condition & self.valid
        return condition.sum(dim=1).to(self.values.dtype)

    def column(self, per_row: list[float]) -> torch.Tensor:
        """Per-row constants as a column, to broadcast over each row."""
        return _to_device(per_row, self.values.device).unsqueeze(1)

    def extremes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Each row's smallest and largest real value."""
        values = self.values
        if self.valid is None:
            return values.amin(dim=1), values.amax(dim=1)
        return (
            torch.where(self.valid, values, math.inf).amin(dim=1),
            torch.where(self.valid, values, -math.inf).amax(dim=1),
        )

    def part(self, index: int) -> torch.Tensor:
        return self.values[index, : self.sizes[index]]


def _mask(sizes: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """Which entries of the padded matrix are real values; the same layers give the same sizes every step."""
    mask = _masks.get((sizes, device))
    if mask is None:
        if len(_masks) > 64:
            _masks.clear()
        host = torch.arange(max(sizes)).unsqueeze(0) < torch.tensor(sizes).unsqueeze(1)
        mask = _masks[(sizes, device)] = host.to(device)
    return mask


def batched_histogram(stacked: _Stacked, values: torch.Tensor, ranges: list[tuple[float, float]], bins: int):
    """Every row's `stats.histogram` layout ([bins counts, below, above, NaN/Inf]) with one bincount."""
    lo = stacked.column([r[0] for r in ranges])
    hi = stacked.column([r[1] for r in ranges])
    finite = torch.isfinite(values)
    position = ((values - lo) * (bins / (hi - lo))).floor()
    position = torch.where(values == hi, bins - 1, position)  # like histc: the upper edge is in the last bin
    slot = position.clamp(0, bins - 1)
    slot = torch.where(finite & (values < lo), bins, slot)
    slot = torch.where(finite & (values > hi), bins + 1, slot)
    slot = torch.where(finite, slot, bins + 2)
    if stacked.valid is not None:
        slot = torch.where(stacked.valid, slot, bins + 3)  # padding: a slot of its own, dropped below
    width = bins + 4
    rows = torch.arange(stacked.count, device=values.device).unsqueeze(1)
    codes = (rows * width + slot.long()).reshape(-1)
    counts = torch.bincount(codes, minlength=stacked.count * width)
    return counts.reshape(stacked.count, width)[:, : bins + 3].to(torch.float32)


def settle_activations(calls: list[ActivationCall], cfg: Config, exact: bool) -> None:
    """The statistics of these calls' stashed outputs, into each call (still on the device)."""
    flats = [c.stash.tensor.reshape(-1) for c in calls]
    squares = torch.stack(torch._foreach_norm(flats, 2)) ** 2
    sums = exact_sums(flats)
    stacked = _Stacked(flats, cfg.histogram_sample)
    values = stacked.values
    nonzero = stacked.count_where(values != 0)
    centers, inners = [], []
    for call in calls:
        bounds = call.layer.bounds
        if bounds is None:
            centers.append(0.0)
            inners.append(math.inf)  # never saturated
        else:
            centers.append((bounds[0] + bounds[1]) / 2)
            inners.append((bounds[1] - bounds[0]) * (0.5 - cfg.saturation_margin))
    saturated = stacked.count_where((values - stacked.column(centers)).abs() >= stacked.column(inners))
    if exact:
        extremes = [torch.aminmax(f) for f in flats]
        lows = torch.stack([e[0] for e in extremes])
        highs = torch.stack([e[1] for e in extremes])
    else:  # the sample's extremes; non-finite whenever the tensor holds NaN/Inf, so that stays exact
        lows, highs = stacked.extremes()
        clean = finite_values(squares, sums)
        lows = torch.where(clean, lows, math.nan)
        highs = torch.where(clean, highs, math.nan)
    scalars = torch.stack([sums, squares, lows, highs, nonzero, saturated], dim=1)
    histograms = None
    if any(c.stash.hist_range is not None for c in calls):
        ranges = [c.stash.hist_range or (0.0, 1.0) for c in calls]
        histograms = batched_histogram(stacked, values, ranges, cfg.histogram_bins)
    for index, call in enumerate(calls):
        call.scalars = scalars[index]
        call.sample_size = stacked.sizes[index]
        if call.stash.hist_range is not None:
            call.histogram = histograms[index]
        elif call.stash.keep_sample:
            call.sample = stats.histogram_sample(stacked.part(index), cfg.first_sight_sample)


def settle_gradients(grads: list[GradCall], cfg: Config) -> None:
    """[squared norm, sum] and, on detailed steps, the log10 |g| histogram of each stashed gradient."""
    flats = [g.stash.tensor.reshape(-1) for g in grads]
    squares = torch.stack(torch._foreach_norm(flats, 2)) ** 2
    scalars = torch.stack([squares, exact_sums(flats)], dim=1)
    histograms = None
    if any(g.stash.hist_range is not None for g in grads):
        stacked = _Stacked(flats, cfg.histogram_sample)
        log_lo, log_hi = cfg.grad_log10_range
        logs = stats.log10_magnitudes(stacked.values, log_lo)
        histograms = batched_histogram(stacked, logs, [(log_lo, log_hi)] * len(grads), cfg.histogram_bins)
    for index, grad in enumerate(grads):
        grad.scalars = scalars[index]
        if grad.stash.hist_range is not None:
            grad.histogram = histograms[index]
