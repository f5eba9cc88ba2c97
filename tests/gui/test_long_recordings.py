"""A long-ish recording scrubbed in the window: the table and every time axis show the run as it stood then."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.engine.run_files import seeded_run
from tests.gui.test_recordings import GRAD, MEAN, bring_forward, loss_curve, table_values

STEPS = 300


@pytest.fixture(scope="module")
def long_recording(tmp_path_factory) -> tuple[Path, list]:
    path = tmp_path_factory.mktemp("runs") / "long.bpviz"
    live, _ = seeded_run(path, steps=STEPS, level="full")
    return path, live


def test_scrubbing_a_long_recording_shows_that_step_in_the_table_and_plots(qtbot, window, long_recording):
    path, live = long_recording
    assert window.open_path(path)
    qtbot.waitUntil(lambda: window.shown_step == STEPS - 1)
    for step in (137, 12, 250):
        window.timeline.go_to(step)
        qtbot.waitUntil(lambda step=step: window.shown_step == step)
        then = live[step]
        assert table_values(window, MEAN) == {layer.name: layer.mean for layer in then.layers}
        assert table_values(window, GRAD) == {layer.name: layer.grad_norm for layer in then.layers}
        steps, losses = loss_curve(window)
        assert list(steps) == list(range(step + 1))  # the whole curve up to the step, nothing after it
        assert list(losses) == [r.loss for r in live[: step + 1]]
        page = window.page
        layer = page.selected_layer()
        bring_forward(window, page.gradient_flow_view)
        curve = page.gradient_flow_view.selected_curve
        x, y = curve.xData, curve.yData  # as given, not as drawn on the log axis
        assert list(x) == list(range(step + 1))  # older than any in-memory window would hold
        assert list(y) == [r.layer(layer).grad_norm for r in live[: step + 1]]
        bring_forward(window, page.histogram_view)
        x, counts = page.histogram_view.current_curve.getData()
        assert np.array_equal(counts, then.layer(layer).histogram.counts)
        trace = page.histogram_view.activation_map.trace
        assert list(trace.steps) == list(range(step + 1))
