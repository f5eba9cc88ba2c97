"""A long run's time axes come from SQL: buckets of steps with min, max and mean, equal to the records' own values."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import bpviz
from bpviz.engine.record.history import History
from bpviz.engine.runs.run_history import RunHistory
from tests.engine.run_files import seeded_run


def test_buckets_hold_the_min_max_mean_and_count_of_each_span_of_steps(tmp_path):
    live, _ = seeded_run(tmp_path / "run.bpviz", steps=23)
    with bpviz.open_run(tmp_path / "run.bpviz") as run:
        buckets = run.buckets("grad_norm", "2", max_points=5)
        width = math.ceil(23 / 5)
        assert buckets.width == width == 5
        spans = [live[i : i + width] for i in range(0, 23, width)]
        assert buckets.steps.tolist() == [span[0].step for span in spans]
        values = [[r.layer("2").grad_norm for r in span] for span in spans]
        assert buckets.count.tolist() == [len(v) for v in values]
        assert buckets.min.tolist() == [min(v) for v in values]
        assert buckets.max.tolist() == [max(v) for v in values]
        assert np.allclose(buckets.mean, [sum(v) / len(v) for v in values], rtol=1e-12)
        loss = run.buckets("loss", max_points=5, step_range=(3, 12))
        spans = [live[i : min(i + 2, 13)] for i in range(3, 13, 2)]  # 10 steps in 5 buckets of 2
        assert loss.steps.tolist() == [span[0].step for span in spans]
        assert np.allclose(loss.mean, [sum(r.loss for r in span) / len(span) for span in spans], rtol=1e-12)
        exact = run.buckets("mean", "1")  # no max_points: a bucket per step, the values as recorded
        assert exact.width == 1 and exact.mean.tolist() == [r.layer("1").mean for r in live]


def test_arrays_of_sparse_detailed_steps_are_thinned_evenly(tmp_path):
    live, _ = seeded_run(tmp_path / "run.bpviz", steps=40, level="economy")
    detailed = [r.step for r in live if r.layer("1").histogram is not None]
    assert 4 <= len(detailed) < 40
    with bpviz.open_run(tmp_path / "run.bpviz") as run:
        rows = run.layer_steps("1", ("histogram",), max_points=math.ceil(len(detailed) / 2))
        assert [s for s, _ in rows] == detailed[::2]
        for step, layer in rows:
            assert np.array_equal(layer.histogram.counts, live[step].layer("1").histogram.counts)


def _thinned(steps: list[int], lo: int, hi: int, max_points: int) -> list[int]:
    """Every k-th of `steps` within [lo, hi], k the smallest power of two that leaves at most `max_points`."""
    inside = [s for s in steps if lo <= s <= hi]
    stride = 1
    while len(inside) > stride * max_points:
        stride *= 2
    return inside[::stride]


def test_the_rows_a_heatmap_picks_follow_a_growing_run_and_any_range(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    x, y = torch.randn(32, 6), torch.randint(0, 3, (32,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    live = []
    with bpviz.watch(model, record=tmp_path / "live.bpviz", level="economy") as w:
        run = bpviz.open_run(w.recorder_path)
        for stop in (20, 60):
            while len(live) < stop:
                loss = F.cross_entropy(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                live.append(w.step(loss))
            w.recorder.writer.flush()
            run.new_steps()
            detailed = [r.step for r in live if r.layer("1").histogram is not None]
            assert 2 <= len(detailed) < len(live)
            for lo, hi, max_points in ((0, stop, 3), (5, stop - 3, 2), (0, 1000, 100), (7, 7, 1)):
                expected = _thinned(detailed, lo, hi, max_points)
                rows = run.layer_steps("1", ("histogram",), step_range=(lo, hi), max_points=max_points)
                assert [s for s, _ in rows] == expected
                for step, layer in rows:
                    assert np.array_equal(layer.histogram.counts, live[step].layer("1").histogram.counts)
                found = run.histograms("1", "activation", step_range=(lo, hi), max_points=max_points)
                if not expected:
                    assert found is None
                    continue
                steps, counts, low, high = found
                assert steps.tolist() == expected
                assert np.array_equal(counts, np.vstack([live[s].layer("1").histogram.counts for s in expected]))
                assert low.tolist() == [live[s].layer("1").histogram.lo for s in expected]
                activity = run.unit_activity_series("1", step_range=(lo, hi), max_points=max_points)
                assert activity[0].tolist() == expected
                assert np.array_equal(activity[1], np.vstack([live[s].layer("1").unit_activity for s in expected]))
    run.close()


def test_buckets_read_again_for_another_last_step_equal_a_fresh_readers(tmp_path):
    seeded_run(tmp_path / "run.bpviz", steps=23)
    with bpviz.open_run(tmp_path / "run.bpviz") as run:
        for hi in (22, 9, 17, 3, 22, 14, 0, 21):  # scrubbing back and forth over the same buckets
            for field, layer, lo in (("loss", None, 0), ("grad_norm", "2", 0), ("mean", "1", 4)):
                with bpviz.open_run(tmp_path / "run.bpviz") as fresh:
                    expected = fresh.buckets(field, layer, max_points=5, step_range=(lo, hi))
                found = run.buckets(field, layer, max_points=5, step_range=(lo, hi))
                assert found.width == expected.width
                for part in ("steps", "mean", "min", "max", "count"):
                    assert getattr(found, part).tolist() == getattr(expected, part).tolist(), (hi, field, part)


def test_the_histogram_held_at_a_step_is_the_latest_taken_whatever_the_thinning(tmp_path):
    """An economy run's plain steps have no histogram: the window shows the latest taken before, named by its step.
    Read off a heatmap's thinned columns it was up to k detailed steps older."""
    live, _ = seeded_run(tmp_path / "run.bpviz", steps=40, level="economy")
    with bpviz.open_run(tmp_path / "run.bpviz") as run:
        for step in (0, 7, 10, 19, 20, 39):
            taken = max(r.step for r in live[: step + 1] if r.layer("1").histogram is not None)
            at, hist = run.histogram_at("1", step)
            assert at == taken
            expected = live[taken].layer("1").histogram
            assert np.array_equal(hist.counts, expected.counts) and (hist.lo, hist.hi) == (expected.lo, expected.hi)
            gradient_at, gradient = run.histogram_at("1", step, "gradient")
            assert gradient_at == taken
            assert np.array_equal(gradient.counts, live[taken].layer("1").grad_histogram.counts)
            thinned = run.histograms("1", step_range=(0, step), max_points=1)[0]
            assert step < 20 or thinned[-1] != taken  # the thinned axis alone would not have told
        history = RunHistory(run, run.record(25), max_points=4, max_rows=1)
        assert history.histogram_at("1")[0] == 20 and history.histogram_at("no such layer") is None
        in_memory = History()
        for record in live[:26]:
            in_memory.append(record)
        assert in_memory.histogram_at("1")[0] == 20 and in_memory.histogram_at("1", grad=True)[0] == 20
