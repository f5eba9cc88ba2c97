"""Per-tensor building blocks of the statistics, computed on the tensor's own device, never synced here.

Every function returns tensors; nothing calls `.item()` or `.cpu()`. The
step's statistics are assembled from these for all layers at once (see
deferred.py), and the collector moves them to the host once. Full passes
are few (max |x| and the norm, exact; the moments too at the full level);
everything that needs a comparison per element (zeros, saturation, the
histogram) reads an evenly strided sample instead. ReLU-family layers add
one exact pass, the per-unit maximum of their input (a unit that never
fired is dead), and on detailed steps per-unit positive counts over whole
samples of at most a bounded part of the batch.
"""

from __future__ import annotations

import enum
import functools
import math

import torch

# Layout of the scalar vector of each observed activation tensor (SATURATED is 0 without bounds).
SUM, SUMSQ, MIN, MAX, SAMPLE_NONZERO, SAMPLE_SATURATED = range(6)

# Sums are taken of the values times 2**-32 (exact: a power of two) and kept in that unit until the host, which
# multiplies back in float64. A float32 sum of finite values then overflows only past 2**32 times float32's
# largest value, so a sum that is not finite means NaN/Inf in the tensor, exactly (a dozen finite values of 3e38
# read as Inf, and their mean as infinite, with plain sums); deferred._sum says where a plain sum is scaled after.
# Below ~5e-29 a scaled value loses precision as a subnormal, far less than the squares already lose below ~1e-19.
SUM_UNIT = 2.0**32


class Exact(enum.Enum):
    """Which of an activation's scalars are over every value; the others are estimated from its sample."""

    ALL = "all"  # the full level: the sums and the extremes
    SUM = "sum"  # the sum (it says NaN/Inf); the sum of squares and the extremes come from the sample
    NONE = "none"  # a ReLU whose input's per-unit maxima say NaN/Inf: every scalar comes from the sample


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
        # each sample's positions first (contiguous runs), then the samples: on a CPU up to several times
        # faster than one reduction over the batch and the positions together
        return reduce(reduce(x, dim=tuple(range(2, x.dim()))), dim=0)
    if x.dim() == 1:
        return x
    return reduce(x.reshape(-1, x.shape[-1]), dim=0)


def units_of(x: torch.Tensor, channel_first: bool) -> int:
    """How many units `unit_positive_counts` reports for `x`."""
    return x.shape[1] if channel_first and x.dim() >= 3 else x.shape[-1]


def squared_norms(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Each tensor's exact sum of squares, as one vector, in one pass over each.

    On a CPU a BLAS dot product of a tensor with itself runs at twice the speed
    of a norm (`_foreach_norm` runs one norm per tensor there), and sums more
    accurately than the norm does over millions of values; on a GPU
    `_foreach_norm` is one kernel for all. Other layouts and dtypes take the norm.
    """
    if all(t.device.type == "cpu" and t.dtype == torch.float32 and t.is_contiguous() for t in tensors):
        flats = [t if t.dim() == 1 else t.view(-1) for t in tensors]
        return as_vector([torch.dot(flat, flat) for flat in flats])
    return as_vector(torch._foreach_norm(tensors, 2)).float() ** 2


def as_vector(scalars: list[torch.Tensor]) -> torch.Tensor:
    """0-d results as one vector: a view of a lone one (a tensor measured in its hook), else one stack."""
    return scalars[0].reshape(1) if len(scalars) == 1 else torch.stack(scalars)


def log10_magnitudes(values: torch.Tensor, log_lo: float) -> torch.Tensor:
    """log10 |v| for a gradient histogram; zeros (-inf) moved just below the range, so they count as
    "below" (|g| < 10^log_lo), not as NaN/Inf."""
    return torch.log10(values.abs()).clamp_min(log_lo - 1.0)
