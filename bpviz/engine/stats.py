"""Per-tensor statistics computed on the tensor's own device, never synced here.

Every function returns tensors; nothing calls `.item()` or `.cpu()`. The
collector concatenates what a whole step produced and moves it to the host
once. Cost is kept to a few fast full passes per tensor (sum, sum of
squares, min/max); everything that needs a comparison per element (zeros,
saturation, the histogram) reads an evenly strided sample instead, except
the per-unit counts of ReLU-family layers, which must be exact and cost one
`sign().sum()` pass.
"""
from __future__ import annotations

import math

import torch

# Layout of the scalar vector produced for each observed activation tensor (SATURATED only with bounds).
SUM, SUMSQ, MIN, MAX, SAMPLE_ZEROS, SAMPLE_SATURATED = range(6)


def histogram_sample(x: torch.Tensor, max_values: int) -> torch.Tensor:
    """An evenly strided view of at most `max_values` elements: shares and histograms need the distribution, not every value."""
    flat = x.reshape(-1)
    n = flat.numel()
    if n <= max_values:
        return flat
    return flat[:: math.ceil(n / max_values)]


def histogram(sample: torch.Tensor, bins: int, lo: float, hi: float) -> torch.Tensor:
    """Counts over fixed edges; values outside [lo, hi] land in the edge bins so none are lost from view."""
    return torch.histc(sample.clamp(lo, hi), bins=bins, min=lo, max=hi)


def activation_scalars(
    x: torch.Tensor, sample: torch.Tensor, bounds: tuple[float, float] | None, margin: float
) -> torch.Tensor:
    """[sum, sum of squares, min, max, zeros in sample(, saturated in sample)] as one float32 vector.

    The saturated count is there only when `bounds` are given.
    """
    flat = x.reshape(-1)
    parts = [flat.sum(), torch.dot(flat, flat), *torch.aminmax(flat), torch.sum(sample == 0, dtype=x.dtype)]
    if bounds is not None:
        center = (bounds[0] + bounds[1]) / 2
        inner = (bounds[1] - bounds[0]) * (0.5 - margin)
        parts.append(torch.sum((sample - center).abs() >= inner, dtype=x.dtype))
    return torch.stack(parts)


def unit_positive_counts(x: torch.Tensor, channel_first: bool, nonnegative: bool) -> torch.Tensor:
    """Positive-value count per unit. A unit is a channel (dim 1) of a conv output, a feature (last dim) otherwise.

    A ReLU-family output is never negative, so sign() is 0 or 1 and one fast
    pass counts; other outputs (an activation a remedy put in) need a compare.
    """
    positive = torch.sign(x) if nonnegative else (x > 0).to(x.dtype)
    return _per_unit(positive, channel_first, torch.sum)


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
    """([squared L2 norm, max |g|], histogram of log10|g| over a sample), both on g's device.

    The squares of a huge but finite gradient overflow float32 (|g| > ~1e19): the max
    tells such an overflow from a real NaN/Inf, which the max propagates.
    """
    gf = g.detach().float()
    flat = gf.reshape(-1)
    scalars = torch.stack([torch.dot(flat, flat), torch.linalg.vector_norm(flat, ord=math.inf)])
    logs = torch.log10(histogram_sample(flat, max_values).abs())  # zeros give -inf, binned at log_lo
    return scalars, histogram(logs, bins, log_lo, log_hi)
