"""Histograms always show where the values are: values outside the edges are counted apart, and the edges follow.

Each check compares the recorded histogram with numpy's histogram of the
very values the layer produced (captured by a forward hook of the test's own).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import bpviz
from bpviz.engine.observe.catalog import choose_range, next_range


class Scale(nn.Module):
    """Multiplies its input by a factor the test sets before each step."""

    def __init__(self) -> None:
        super().__init__()
        self.factor = 1.0

    def forward(self, x):
        return x * self.factor


def _run(factors, values_for) -> tuple[list, list[np.ndarray]]:
    """Forward and record one step per factor; (records, the exact outputs of the Scale layer)."""
    torch.manual_seed(0)
    scale = Scale()
    model = nn.Sequential(nn.Linear(8, 64), scale, nn.Linear(64, 2))
    seen: list[np.ndarray] = []
    scale.register_forward_hook(lambda _m, _i, out: seen.append(out.detach().numpy().ravel().copy()))
    x = torch.randn(32, 8)
    records = []
    with bpviz.watch(model, level="full") as w:
        for step, factor in enumerate(factors):
            scale.factor = factor
            values_for(model, step)
            loss = model(x).pow(2).mean()
            loss.backward()
            records.append(w.step(loss))
            model.zero_grad()
    return records, seen


def _check_truthful(hist, values: np.ndarray) -> None:
    """Every value is counted once: binned on the histogram's own edges, or below, above, or NaN/Inf."""
    finite = values[np.isfinite(values)]
    inside, _ = np.histogram(finite, bins=len(hist.counts), range=(hist.lo, hist.hi))
    assert hist.total == pytest.approx(values.size)
    # np.histogram and torch.histc may round a value on an edge into neighbouring bins: compare cumulatively
    assert np.abs(np.cumsum(hist.counts) - np.cumsum(inside)).max() <= 2
    assert hist.below == np.sum(finite < hist.lo)
    assert hist.above == np.sum(finite > hist.hi)
    assert hist.nonfinite == values.size - finite.size


def test_a_layer_growing_tenfold_over_20_steps_keeps_a_truthful_histogram():
    factors = list(np.geomspace(1.0, 10.0, 20))
    records, seen = _run(factors, lambda _m, _s: None)
    outside = []
    for record, values in zip(records, seen):
        hist = record.layer("1").histogram
        _check_truthful(hist, values)
        outside.append((hist.below + hist.above) / values.size)
        # the drawn mass sits where the values are: the bins' centre of mass is the values' mean (within a bin)
        centres = (hist.edges[:-1] + hist.edges[1:]) / 2
        if hist.below + hist.above == 0:
            width = (hist.hi - hist.lo) / len(hist.counts)
            assert np.average(centres, weights=hist.counts) == pytest.approx(values.mean(), abs=width)
    final = records[-1].layer("1").histogram
    assert final.lo <= seen[-1].min() and final.hi >= seen[-1].max()  # the edges followed the growth
    assert max(outside) < 0.2 and sum(o > 0 for o in outside) <= len(outside) // 2  # outside: rare, small, and counted


def test_a_revived_layer_is_not_piled_into_the_edge_bin():
    def revive(model, step):
        with torch.no_grad():
            if step == 0:  # dead: every unit's input negative, so the ReLU's output is all zeros
                model[0].weight.zero_()
                model[0].bias.fill_(-1.0)
            if step == 3:  # re-initialised
                torch.manual_seed(1)
                model[0].reset_parameters()

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 2))
    seen: list[np.ndarray] = []
    model[1].register_forward_hook(lambda _m, _i, out: seen.append(out.detach().numpy().ravel().copy()))
    x = torch.randn(32, 8) * 3
    records = []
    with bpviz.watch(model, level="full") as w:
        for step in range(6):
            revive(model, step)
            loss = model(x).pow(2).mean()
            loss.backward()
            records.append(w.step(loss))
            model.zero_grad()
    for record, values in zip(records, seen):
        _check_truthful(record.layer("1").histogram, values)
    assert seen[3].max() > 0.5  # alive again, beyond the dead layer's edges ...
    assert records[3].layer("1").histogram.above > 0  # ... and said so at once
    later = records[4].layer("1").histogram
    assert later.hi >= seen[4].max() and later.above == 0  # then the edges cover the values


def test_nan_values_are_counted_apart():
    def poison(model, step):
        if step == 2:
            with torch.no_grad():
                model[0].weight[0, 0] = float("nan")

    records, seen = _run([1.0] * 3, poison)
    hist = records[2].layer("1").histogram
    _check_truthful(hist, seen[2])
    assert hist.nonfinite == np.sum(~np.isfinite(seen[2])) > 0
    assert (hist.lo, hist.hi) == (records[1].layer("1").histogram.lo, records[1].layer("1").histogram.hi)


def test_zero_gradients_count_below_the_gradient_range_not_as_nan():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    with torch.no_grad():
        model[2].weight[:, :4] = 0.0  # half of the ReLU's outputs feed nothing: their gradient is exactly zero
    with bpviz.watch(model, level="full") as w:
        loss = model(torch.randn(16, 4)).pow(2).mean()
        loss.backward()
        grad = w.step(loss).layer("1").grad_histogram
    assert grad.nonfinite == 0
    assert grad.below >= 16 * 4 and grad.total == pytest.approx(16 * 8)


@pytest.mark.parametrize(
    "current, lo, hi, narrow, expected",
    [
        ((0.0, 1.0), 0.1, 0.9, True, (0.0, 1.0)),  # fits: the edges stay, steps line up
        ((0.0, 1.0), 0.0, 2.0, True, (0.0, 2.5)),  # left it: widened, padded
        ((-1.0, 1.0), -3.0, 0.5, True, (-4.0, 2.0)),  # covers the old range and the values, padded
        ((-10.0, 10.0), 0.0, 0.1, True, (0.0, 0.125)),  # a sliver of the range: fitted
        ((0.0, 1.0), 0.0, 0.01, False, (0.0, 1.0)),  # fixed bounds (sigmoid): never narrowed
        ((0.0, 1.0), math.nan, 2.0, True, (0.0, 1.0)),  # NaN extremes: kept, the NaNs are counted apart
        ((0.0, 0.5), 0.0, 30.0, True, (0.0, 37.5)),  # a ReLU that was all zeros, then fired: still from 0
    ],
)
def test_next_range(current, lo, hi, narrow, expected):
    assert next_range(current, lo, hi, narrow) == pytest.approx(expected)


def test_a_layer_of_one_value_gets_edges_that_never_reach_below_zero_when_it_is_not_negative():
    assert choose_range(0.0, 0.0) == (0.0, 0.5)  # a dead ReLU's first step: its zeros on the lower edge
    assert choose_range(2.0, 2.0) == (0.0, 3.0)
    assert choose_range(-2.0, -2.0) == (-3.0, -1.0)


def test_layers_binned_together_count_edges_outliers_and_nan_like_numpy_and_never_the_padding():
    from bpviz.engine.observe.deferred import _Stacked, batched_histogram

    hi_plus = float(np.nextafter(np.float32(2.0), np.float32(3.0)))
    edges = [-2.0, 2.0, 0.0, 1.0, hi_plus, -2.5, 7.0, 3e38, -3e38, math.inf, -math.inf, math.nan]
    torch.manual_seed(1)
    rows = [torch.cat([torch.tensor(edges), torch.randn(n) * 2]) for n in (500, 37, 3000)]  # three lengths
    stacked = _Stacked(rows, 4096)
    assert stacked.padded  # the shorter rows are padded with zeros
    counts = batched_histogram(stacked, stacked.values, [(-2.0, 2.0)] * 3, 16).numpy()
    for row, got in zip(rows, counts):
        v = row.numpy()
        finite = v[np.isfinite(v)]
        inside, _ = np.histogram(finite, bins=16, range=(-2.0, 2.0))  # the upper edge in the last bin
        expected = [*inside, np.sum(finite < -2.0), np.sum(finite > 2.0), np.sum(~np.isfinite(v))]
        assert got.tolist() == [float(c) for c in expected]
