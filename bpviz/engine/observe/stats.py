"""Per-tensor statistics computed on the tensor's own device, never synced here.

Every function returns tensors; nothing calls `.item()` or `.cpu()`. The
collector concatenates what a whole step produced and moves it to the host
once. Cost is kept to a few fast full passes per tensor (sum, sum of
squares, min/max; a gradient's sum and sum of squares); everything that
needs a comparison per element (zeros, saturation, the histogram) reads an
evenly strided sample instead. ReLU-family layers add one exact pass, the
per-unit maximum of their input (a unit that never fired is dead), and
per-unit positive counts over whole samples of at most a bounded part of
the batch.
"""
from __future__ import annotations

import functools
import math

import torch

# Layout of the scalar vector produced for each observed activation tensor (SATURATED only with bounds).
SUM, SUMSQ, MIN, MAX, SAMPLE_NONZERO, SAMPLE_SATURATED = range(6)


def histogram_sample(x: torch.Tensor, max_values: int) -> torch.Tensor:
    """An evenly strided view of at most `max_values` elements.

    Shares and histograms need the distribution, not every value.
    """
    flat = x.reshape(-1)
    if flat.numel() <= max_values:
        return flat
    return flat[:: sample_stride(tuple(x.shape), max_values)]


@functools.lru_cache(maxsize=4096)
def sample_stride(shape: tuple[int, ...], max_values: int) -> int:
    """The step between sampled elements: at least numel / max_values, and sharing no factor with any dimension.

    A step that divides a dimension keeps landing on the same column or
    channel (every 512th value of 32x32 feature maps is always column 0, a
    padded border); coprime to every dimension, the sample sweeps them all.
    """
    step = max(1, math.ceil(math.prod(shape) / max_values))
    while step > 1 and any(math.gcd(step, d) != 1 for d in shape if d > 1):
        step += 1
    return step


# A histogram tensor holds `bins` counts, then these three: finite values below lo, above hi, and NaN/Inf.
BELOW, ABOVE, NONFINITE = range(-3, 0)


def histogram(sample: torch.Tensor, bins: int, lo: float, hi: float) -> torch.Tensor:
    """[counts over [lo, hi] (`bins` of them), below, above, non-finite], all on the sample's device.

    Values outside the range are counted apart, never folded into the edge bins:
    a histogram that piles them there shows a distribution the data does not have.
    """
    finite = torch.isfinite(sample)
    inside = torch.histc(sample, bins=bins, min=lo, max=hi)  # ignores values outside [lo, hi] and NaN/Inf
    below = torch.count_nonzero(finite & (sample < lo))
    above = torch.count_nonzero(finite & (sample > hi))
    nonfinite = sample.numel() - torch.count_nonzero(finite)
    return torch.cat([inside, torch.stack([below, above, nonfinite]).to(inside.dtype)])


def activation_scalars(
    x: torch.Tensor, sample: torch.Tensor, bounds: tuple[float, float] | None, margin: float
) -> torch.Tensor:
    """[sum, sum of squares, min, max, nonzeros in sample(, saturated in sample)] as one vector.

    The saturated count is there only when `bounds` are given. Nonzeros,
    not zeros: `count_nonzero` is one fused pass where `sum(sample == 0)`
    is two.
    """
    flat = x.reshape(-1)
    parts = [flat.sum(), torch.dot(flat, flat), *torch.aminmax(flat), torch.count_nonzero(sample).to(x.dtype)]
    if bounds is not None:
        center = (bounds[0] + bounds[1]) / 2
        inner = (bounds[1] - bounds[0]) * (0.5 - margin)
        parts.append(torch.count_nonzero((sample - center).abs() >= inner).to(x.dtype))
    return torch.stack(parts)


def unit_positive_counts(x: torch.Tensor, channel_first: bool, nonnegative: bool) -> torch.Tensor:
    """Positive-value count per unit. A unit is a channel (dim 1) of a conv output, a feature (last dim) otherwise.

    A ReLU-family output is never negative, so sign() is 0 or 1 and one fast
    pass counts; other outputs (an activation a remedy put in) need a compare.
    """
    positive = torch.sign(x) if nonnegative else (x > 0).to(x.dtype)
    return _per_unit(positive, channel_first, torch.sum)


def batch_sample(x: torch.Tensor, max_values: int) -> torch.Tensor:
    """Every k-th sample of the batch (dim 0), at most `max_values` elements but at least one sample.

    Whole samples, so every unit is seen at all its positions: activity
    shares are estimated, while whether a unit fired at all comes exactly
    from its input's maximum (`unit_max`), which reads the whole tensor.
    """
    if x.dim() < 2 or x.numel() <= max_values:
        return x
    keep = max(1, max_values // (x.numel() // x.shape[0]))
    return x[:: math.ceil(x.shape[0] / keep)]


def unit_max(x: torch.Tensor, channel_first: bool) -> torch.Tensor:
    """Per-unit maximum over samples (and positions): a ReLU unit whose input max is <= 0 never fired."""
    return _per_unit(x.float(), channel_first, torch.amax)


def _per_unit(x: torch.Tensor, channel_first: bool, reduce) -> torch.Tensor:
    if channel_first and x.dim() >= 3:
        return reduce(x, dim=[0] + list(range(2, x.dim())))
    if x.dim() == 1:
        return x
    return reduce(x.reshape(-1, x.shape[-1]), dim=0)


def units_of(x: torch.Tensor, channel_first: bool) -> int:
    """How many units `unit_positive_counts` reports for `x`."""
    return x.shape[1] if channel_first and x.dim() >= 3 else x.shape[-1]


def grad_scalars_and_histogram(
    g: torch.Tensor, max_values: int, bins: int, log_lo: float, log_hi: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """([squared L2 norm, sum], histogram of log10|g| over a sample), both on g's device.

    The squares of a huge but finite gradient overflow float32 (|g| > ~1e19)
    while its plain sum does not: an infinite square sum with a finite sum
    is such an overflow, not a NaN/Inf, which would make both non-finite.
    (A sum rather than min/max: on the CPU it is the cheaper pass.)
    """
    gf = g.detach().float()
    flat = gf.reshape(-1)
    scalars = torch.stack([torch.dot(flat, flat), flat.sum()])
    # zeros give -inf: moved just below the range, so they count as "below" (|g| < 10^log_lo), not as NaN/Inf
    logs = torch.log10(histogram_sample(flat, max_values).abs()).clamp_min(log_lo - 1.0)
    return scalars, histogram(logs, bins, log_lo, log_hi)
