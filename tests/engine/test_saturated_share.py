"""The saturated share counts exactly the values within the margin of a layer's bounds, never the padding.

Layers of different sizes are counted together in one padded matrix; the padding is zeros, which lie at a
sigmoid's lower bound, so a count that saw it would call every short layer saturated.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from bpviz.engine.observe.deferred import _saturated_counts, _Stacked


def test_counted_together_like_numpy_per_layer_with_edges_nan_and_padding():
    margin = 0.01
    edges = [0.0, 0.01, 0.99, 1.0, 0.5, 0.0099, 0.9901, math.nan]  # at, just inside and just outside the margin
    torch.manual_seed(2)
    rows = [
        torch.cat([torch.tensor(edges), torch.rand(500)]),  # sigmoid, (0, 1)
        torch.cat([torch.tensor(edges) * 2 - 1, torch.rand(37) * 2 - 1, torch.tensor([math.inf])]),  # tanh
        torch.cat([torch.tensor(edges), torch.randn(3000), torch.tensor([math.inf, -math.inf])]),  # unbounded
    ]
    bounds = [(0.0, 1.0), (-1.0, 1.0), None]
    stacked = _Stacked(rows, 4096)
    assert stacked.padded

    got = _saturated_counts(stacked, bounds, margin).tolist()

    expected = []
    for row, bound in zip(rows, bounds):
        if bound is None:
            expected.append(0.0)
            continue
        v = row.numpy()
        center = np.float32((bound[0] + bound[1]) / 2)
        inner = np.float32((bound[1] - bound[0]) * (0.5 - margin))
        expected.append(float(np.sum(np.abs(v - center) >= inner)))  # NaN compares False: not saturated
    assert got == expected
    assert expected[0] >= 4 and expected[1] >= 5  # the edges at and beyond the margin, and tanh's +inf
