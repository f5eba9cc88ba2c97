"""Histograms on different edges, put onto common ones so they can stand side by side in a heatmap.

A layer's histogram edges change when its values leave them (a revived or a
growing layer); a heatmap over time needs one y axis for every column. Each
row's counts are spread over the common bins in proportion to overlap (linear
within a bin), so every row keeps its mass and its mass stays where it was.
"""

from __future__ import annotations

import numpy as np

MAX_BINS = 256  # common bins at most: enough for a range that grew 4x to keep every row's detail


def common_bins(los: np.ndarray, his: np.ndarray, bins: int) -> tuple[float, float, int]:
    """(lo, hi, bin count) covering every row, fine enough for the narrowest row's bins (at most MAX_BINS)."""
    lo, hi = float(los.min()), float(his.max())
    finest = float(((his - los) / bins).min())
    wanted = int(np.ceil((hi - lo) / finest - 1e-9)) if finest > 0 else bins
    return lo, hi, int(np.clip(wanted, bins, max(bins, MAX_BINS)))


def rebin(counts: np.ndarray, los: np.ndarray, his: np.ndarray, lo: float, hi: float, bins: int) -> np.ndarray:
    """Rows of `counts` (row i over [los[i], his[i]]) as rows over `bins` equal bins of [lo, hi]."""
    out = np.empty((len(counts), bins))
    edges = np.linspace(lo, hi, bins + 1)
    width = counts.shape[1]
    pairs = np.stack([los, his], axis=1)
    for pair in np.unique(pairs, axis=0):  # rows sharing edges share one interpolation: few groups, many rows
        rows = np.flatnonzero((pairs == pair).all(axis=1))
        own = np.linspace(pair[0], pair[1], width + 1)
        cumulative = np.concatenate([np.zeros((len(rows), 1)), np.cumsum(counts[rows], axis=1)], axis=1)
        at = np.stack([np.interp(edges, own, c) for c in cumulative])
        out[rows] = np.diff(at, axis=1)
    return out
