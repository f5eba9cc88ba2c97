"""Per-tensor statistics computed on the tensor's own device, never synced here.

Every function returns tensors; nothing calls `.item()` or `.cpu()`. The
collector concatenates what a whole step produced and moves it to the host
once. Scalars are packed into one small vector per call so that a step
costs one `torch.cat` and one transfer however many layers it has.
"""
from __future__ import annotations

import math

import torch

# Layout of the scalar vector produced for each observed activation tensor.
MEAN, VAR, MIN, MAX, ZEROS, SATURATED = range(6)
ACTIVATION_SCALARS = 6


def histogram_sample(x: torch.Tensor, max_values: int) -> torch.Tensor:
    """An evenly strided view of at most `max_values` elements: histograms need the shape of a distribution, not every value."""
    flat = x.reshape(-1)
    n = flat.numel()
    if n <= max_values:
        return flat
    return flat[:: math.ceil(n / max_values)]


def histogram(sample: torch.Tensor, bins: int, lo: float, hi: float) -> torch.Tensor:
    """Counts over fixed edges; values outside [lo, hi] land in the edge bins so none are lost from view."""
    return torch.histc(sample.float().clamp(lo, hi), bins=bins, min=lo, max=hi)


def activation_scalars(
    x: torch.Tensor,
    unit_positive: torch.Tensor | None,
    bounds: tuple[float, float] | None,
    margin: float,
) -> torch.Tensor:
    """[mean, var, min, max, zero count, saturated count] of `x` as one float64 vector on x's device.

    For ReLU-family outputs the zero count comes free from the per-unit
    positive counts (such an output is never negative), saving a pass.
    """
    xf = x.detach().float()
    var, mean = torch.var_mean(xf, correction=0)
    lo, hi = torch.aminmax(xf)
    if unit_positive is not None:
        zeros = xf.numel() - unit_positive.sum()
    else:
        zeros = (xf == 0).sum()
    if bounds is not None:
        width = (bounds[1] - bounds[0]) * margin
        saturated = ((xf <= bounds[0] + width) | (xf >= bounds[1] - width)).sum()
    else:
        saturated = torch.zeros((), device=xf.device)
    return torch.stack([mean, var, lo, hi, zeros.to(mean.dtype), saturated.to(mean.dtype)]).double()


def unit_positive_counts(x: torch.Tensor, channel_first: bool) -> torch.Tensor:
    """Positive-value count per unit: channel (dim 1) of a conv output, feature (last dim) otherwise."""
    positive = x.detach() > 0
    if channel_first and x.dim() >= 3:
        return positive.sum(dim=[0] + list(range(2, x.dim())))
    if x.dim() == 1:
        return positive.to(torch.int64)
    return positive.reshape(-1, x.shape[-1]).sum(dim=0)


def units_of(x: torch.Tensor, channel_first: bool) -> int:
    """How many units `unit_positive_counts` reports for `x`."""
    return x.shape[1] if channel_first and x.dim() >= 3 else x.shape[-1]


def grad_scalars_and_histogram(
    g: torch.Tensor, max_values: int, bins: int, log_lo: float, log_hi: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(squared L2 norm as a 1-vector, histogram of log10|g|) of a gradient, both on g's device."""
    gf = g.detach().float()
    sumsq = torch.linalg.vector_norm(gf).double().square().reshape(1)
    sample = histogram_sample(gf, max_values).abs()
    logs = torch.log10(sample.clamp_min(10.0**log_lo))
    return sumsq, histogram(logs, bins, log_lo, log_hi)
