"""The histogram view draws values where they are, also when a layer's values grow past its first edges.

The values come from a real run (a layer scaled 1x to 10x over 20 steps);
what is drawn (curves, bars, heatmap columns) is compared with numpy's
histogram of the values the layer really produced.
"""

from __future__ import annotations

import numpy as np
import pytest

from bpviz.engine.record.history import History
from bpviz.gui.plots.histogram_view import HistogramView
from tests.engine.test_histogram_range import _run
from tests.gui.record_factory import histogram, layer, record


@pytest.fixture(scope="module")
def growing():
    records, seen = _run(list(np.geomspace(1.0, 10.0, 20)), lambda _m, _s: None)
    history = History()
    for r in records:
        history.append(r)
    return history, seen


def _curve(item) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(item.xData), np.asarray(item.yData)


def test_the_current_histogram_and_what_fell_outside_add_up_to_the_values(qtbot, growing):
    history, seen = growing
    view = HistogramView()
    qtbot.addWidget(view)
    view.set_layer("1")
    for n in range(1, len(seen) + 1):  # step by step, as a run draws it
        partial = History()
        for r in list(history.records)[:n]:
            partial.append(r)
        view.refresh(partial)
        values = seen[n - 1]
        edges, counts = _curve(view.current_curve)
        drawn = counts.sum() + sum(view.outside_bars.opts["height"])
        assert drawn == pytest.approx(values.size)  # nothing hidden: in the bins, or in a bar beyond an edge
        inside, _ = np.histogram(values, bins=len(counts), range=(edges[0], edges[-1]))
        assert np.abs(np.cumsum(counts) - np.cumsum(inside)).max() <= 2
        above = np.sum(values > edges[-1])
        assert (above > 0) == ("above" in view.outside_label.toPlainText())
        # on its backing over the bars, and no empty backing box when nothing is outside
        assert view.outside_label.isVisible() == bool(view.outside_label.toPlainText())
        if above:
            assert view.outside_bars.opts["x0"][-1] == pytest.approx(edges[-1])
            assert view.outside_bars.opts["height"][-1] == above


def test_the_heatmap_puts_every_step_on_common_edges_where_its_values_are(qtbot, growing):
    history, seen = growing
    view = HistogramView()
    qtbot.addWidget(view)
    view.set_layer("1")
    view.refresh(history)
    heatmap = view.activation_map
    image = np.expm1(heatmap.image.image)  # (steps, bins) on the heatmap's one y axis
    lo, hi = heatmap.bounds
    assert lo <= min(v.min() for v in seen) and hi >= max(v.max() for v in seen)  # the last steps' values fit
    edges = np.linspace(lo, hi, image.shape[1] + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    for step, values in enumerate(seen):
        hist = history.records[step].layer("1").histogram
        column = image[step]
        assert column.sum() == pytest.approx(hist.counts.sum())  # rebinning keeps each step's mass
        inside = values[(values >= hist.lo) & (values <= hist.hi)]
        own_bin = (hist.hi - hist.lo) / len(hist.counts)
        assert np.average(centres, weights=column) == pytest.approx(inside.mean(), abs=own_bin)
        spread = np.sqrt(np.average((centres - inside.mean()) ** 2, weights=column))
        assert spread == pytest.approx(inside.std(), abs=own_bin)
    # the first step's values span a tenth of the final range: drawn on a tenth of the height, not stretched
    first = image[0] > 0
    assert (edges[1:][first].max() - edges[:-1][first].min()) < 0.25 * (hi - lo)


def test_steps_with_values_outside_or_nan_are_marked_on_the_heatmap(qtbot):
    history = History()
    counts = [0, 1, 2, 3, 3, 2, 1, 0]
    hists = [histogram(counts), histogram(counts), histogram(counts)]
    hists[1] = type(hists[1])(hists[1].counts, -2.0, 2.0, above=5.0)
    hists[2] = type(hists[2])(hists[2].counts, -2.0, 2.0, nonfinite=4.0)
    for step, h in enumerate(hists):
        history.append(record(step, [layer("fc", 0, histogram=h, step=step)]))
    view = HistogramView()
    qtbot.addWidget(view)
    view.set_layer("fc")
    view.refresh(history)
    marks = view.activation_map.outside_marks
    xs, symbols = [p.pos().x() for p in marks.points()], [p.symbol() for p in marks.points()]
    assert sorted(zip(xs, symbols)) == [(1.0, "t"), (2.0, "x")]
    assert "NaN/Inf" in view.activation_map.note.toPlainText()
    assert "NaN/Inf" in view.outside_label.toPlainText()


def test_a_layer_whose_every_value_is_nan_shows_the_share_and_no_made_up_axis(qtbot):
    import torch
    from torch import nn

    import bpviz

    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh())
    with torch.no_grad():
        model[0].weight.fill_(float("nan"))
    history = History()
    with bpviz.watch(model) as w:
        loss = model(torch.randn(16, 4)).sum()
        loss.backward()
        history.append(w.step(loss))
    hist = history.latest.layer("0").histogram
    assert hist.nonfinite == 16 * 8 and not hist.counts.any()  # the record: all 128 values NaN, none in a bin
    view = HistogramView()
    qtbot.addWidget(view)
    view.set_layer("0")
    view.refresh(history)
    assert (
        view.current_curve.yData is None or len(view.current_curve.yData) == 0
    )  # no flat line passed off as a measured empty histogram
    assert "100% NaN/Inf" in view.outside_label.toPlainText()
    assert view.histogram_plot.viewRange()[1] == pytest.approx([0, 1])  # not a count axis of made-up values
