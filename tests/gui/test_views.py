"""The plotting views: what they draw from a History, incremental updates, resets, and export."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PySide6 import QtCore

from bpviz.engine.record.history import History
from bpviz.gui.plots.dead_units_view import ACTIVITY_STEPS, DeadUnitsView
from bpviz.gui.plots.decade_axis import DecadeAxis
from bpviz.gui.plots.gradient_flow_view import GradientFlowView
from bpviz.gui.plots.histogram_view import HistogramView
from bpviz.gui.plots.layer_axis import abbreviate
from bpviz.gui.plots.loss_view import LossView
from bpviz.gui.plots.reference_curves import spread_in_depth
from bpviz.gui.plots.traces import LayerTrace, RecordCursor, RollingBuffer
from bpviz.gui.window.export import export_png, export_svg
from tests.gui.record_factory import BINS, histogram, layer, record, small_history, small_net

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def curve_data(item) -> tuple[np.ndarray, np.ndarray]:
    """The data a PlotDataItem was given (before any log transform); empty when it has none."""
    if item.xData is None:
        return np.empty(0), np.empty(0)
    return np.asarray(item.xData), np.asarray(item.yData)


def make(qtbot, cls):
    view = cls()
    qtbot.addWidget(view)
    return view


# --- series helpers ---------------------------------------------------------------------------------


def test_rolling_buffer_keeps_the_newest_rows_in_order():
    buffer = RollingBuffer(4)
    buffer.append(np.arange(0, 3))
    assert buffer.data.tolist() == [0, 1, 2]
    for start in range(3, 12, 3):
        buffer.append(np.arange(start, start + 3))
    assert buffer.data.tolist() == [8, 9, 10, 11]


def test_rolling_buffer_rows():
    buffer = RollingBuffer(3, (2,))
    buffer.append(np.array([[0, 0], [1, 1]]))
    buffer.append(np.array([[2, 2], [3, 3]]))
    assert buffer.data.tolist() == [[1, 1], [2, 2], [3, 3]]
    buffer.append(np.arange(10).reshape(5, 2))
    assert buffer.data.tolist() == [[4, 5], [6, 7], [8, 9]]


def test_cursor_reads_only_new_records_and_detects_a_restart():
    history = small_history(3)
    cursor = RecordCursor()
    rebuild, new = cursor.advance(history)
    assert rebuild and [r.step for r in new] == [0, 1, 2]
    assert cursor.advance(history) == (False, [])
    history.append(record(3, small_net(3)))
    rebuild, new = cursor.advance(history)
    assert not rebuild and [r.step for r in new] == [3]
    # the same History object, restarted: step numbers go back to 0 and on past the last one seen
    for step in range(6):
        history.records.append(record(step, small_net(step)))
    rebuild, new = cursor.advance(history)
    assert rebuild and [r.step for r in new] == [0, 1, 2, 3, 0, 1, 2, 3, 4, 5]


def test_layer_trace_matches_history_layer_series():
    history = small_history(6)
    trace = LayerTrace("relu1", lambda l: l.grad_norm)
    trace.update(history)
    steps, values = history.layer_series("relu1", "grad_norm")
    assert trace.steps.tolist() == steps.tolist() == [1, 2, 3, 4, 5]
    assert trace.values.tolist() == values.tolist()
    history.append(record(6, small_net(6)))
    assert trace.update(history)
    assert trace.steps.tolist() == [1, 2, 3, 4, 5, 6]
    assert not trace.update(history)


def test_layer_trace_rolls_with_a_bounded_history():
    history = small_history(5, max_steps=3)
    trace = LayerTrace("fc1", lambda l: l.grad_norm)
    trace.update(history)
    assert trace.steps.tolist() == [2, 3, 4]
    for step in range(5, 9):
        history.append(record(step, small_net(step)))
    trace.update(history)
    assert trace.steps.tolist() == [6, 7, 8]
    assert trace.values.tolist() == pytest.approx([0.07, 0.08, 0.09])


def test_spread_in_depth_keeps_first_and_last():
    names = [f"l{i}" for i in range(10)]
    assert spread_in_depth(names, 4) == ["l0", "l3", "l6", "l9"]
    assert spread_in_depth(names[:3], 4) == ["l0", "l1", "l2"]


def test_abbreviate_keeps_the_tail_of_long_names():
    assert abbreviate("fc1") == "fc1"
    assert abbreviate("encoder.layers.11.mlp.fc2") == "…11.mlp.fc2"
    assert abbreviate("a_really_long_module_name") == "a_really_long…"
    assert all(len(abbreviate(n)) <= 14 for n in ["x" * 40, "a.b.c.d.e.f.g.h.i.j", "blocks.12.attention"])


# --- gradient flow ----------------------------------------------------------------------------------


def test_gradient_flow_bars_are_the_grad_norms_in_forward_order_without_none(qtbot):
    view = make(qtbot, GradientFlowView)
    history = History()
    layers = small_net(0)  # relu1 has no gradient at step 0
    history.append(record(0, list(reversed(layers))))  # the list order must not matter: `order` does
    view.refresh(history)
    x, norms = view.plotted_norms()
    assert x.tolist() == [0.0, 2.0, 3.0]
    assert norms == pytest.approx([0.01, 1.0, 2.0])
    assert view.axis._names == ["fc1", "relu1", "fc2", "sigmoid"]
    assert view.missing.data["x"].tolist() == [1.0]


def test_gradient_flow_marks_nonfinite_gradients_and_follows_new_steps(qtbot):
    view = make(qtbot, GradientFlowView)
    history = small_history(2)
    view.refresh(history)
    assert view.plotted_norms()[1] == pytest.approx([0.02, 0.1, 1.0, 2.0])
    layers = small_net(2)
    layers[2] = layer("fc2", 2, grad_norm=float("inf"), grad_nonfinite=True)
    history.append(record(2, layers))
    view.refresh(history)
    x, norms = view.plotted_norms()
    assert x.tolist() == [0.0, 1.0, 3.0]
    assert norms == pytest.approx([0.03, 0.1, 2.0])
    assert view.nonfinite_bars.opts["x"].tolist() == [2.0]


def test_gradient_flow_over_time_follows_the_selected_layer(qtbot):
    view = make(qtbot, GradientFlowView)
    history = small_history(4)
    view.set_layer("fc1")
    view.refresh(history)
    steps, values = curve_data(view.selected_curve)
    assert steps.tolist() == [0, 1, 2, 3]
    assert values == pytest.approx([0.01, 0.02, 0.03, 0.04])
    assert view.selection_band.opts["x"] == [0.0]
    view.set_layer("sigmoid")  # redraws at once from the history it last saw
    assert curve_data(view.selected_curve)[1].tolist() == [2.0, 2.0, 2.0, 2.0]
    assert view.selection_band.opts["x"] == [3.0]
    assert set(view.references.curves) == {"fc1", "relu1", "fc2", "sigmoid"}


def test_clicking_a_bar_emits_its_layer(qtbot):
    view = make(qtbot, GradientFlowView)
    view.resize(800, 600)
    view.show()
    qtbot.waitExposed(view)
    view.refresh(small_history(1))
    box = view.flow.getViewBox()
    y = sum(box.viewRange()[1]) / 2
    pos = view.flow_widget.mapFromScene(box.mapViewToScene(QtCore.QPointF(2.0, y)))
    with qtbot.waitSignal(view.layer_clicked) as signal:
        qtbot.mouseClick(view.flow_widget.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=pos)
    assert signal.args == ["fc2"]


# --- histograms ---------------------------------------------------------------------------------------


def test_histogram_curve_is_the_current_step_over_fixed_edges(qtbot):
    view = make(qtbot, HistogramView)
    history = small_history(3)
    view.set_layer("fc2")
    view.refresh(history)
    latest = history.latest.layer("fc2").histogram
    x, y = curve_data(view.current_curve)
    assert x.tolist() == latest.edges.tolist() == np.linspace(-2, 2, BINS + 1).tolist()
    assert y.tolist() == latest.counts.tolist()
    previous = history.records[-2].layer("fc2").histogram.counts
    assert curve_data(view.previous_curve)[1] == pytest.approx(previous)
    assert "fc2" in view.header.text() and "step 2" in view.header.text()


def test_histogram_heatmaps_are_steps_by_bins_and_grow(qtbot):
    view = make(qtbot, HistogramView)
    history = small_history(4)
    view.set_layer("relu1")
    view.refresh(history)
    image = view.activation_map.image.image
    assert image.shape == (4, BINS)
    steps, counts, lo, hi = history.histogram_series("relu1")
    assert np.expm1(image) == pytest.approx(counts)
    assert view.gradient_map.image.image.shape == (4, BINS)
    assert view.gradient_map.bounds == (-12.0, 4.0)
    assert view.activation_map.image.levels.tolist() == [0.0, pytest.approx(np.log1p(counts.max()))]
    history.append(record(4, small_net(4)))
    view.refresh(history)
    assert view.activation_map.image.image.shape == (5, BINS)
    rect = view.activation_map.image.mapRectToParent(view.activation_map.image.boundingRect())
    assert (rect.left(), rect.right(), rect.top(), rect.bottom()) == (-0.5, 4.5, -2.0, 2.0)


def test_histogram_heatmap_skips_steps_without_a_histogram(qtbot):
    view = make(qtbot, HistogramView)
    history = small_history(2)
    layers = small_net(2)
    layers[0].grad_histogram = None
    history.append(record(2, layers))
    view.set_layer("fc1")
    view.refresh(history)
    assert view.activation_map.image.image.shape == (3, BINS)
    assert view.gradient_map.image.image.shape == (2, BINS)


def _one_hot_history(steps: list[int]) -> History:
    """fc's histogram at each of `steps`, all its values in bin (i mod BINS) at the i-th of them."""
    history = History()
    for i, step in enumerate(steps):
        counts = np.zeros(BINS)
        counts[i % BINS] = 100.0
        history.append(record(step, [layer("fc", 0, histogram=histogram(counts), step=step)]))
    return history


def test_each_heatmap_column_stands_over_its_own_steps_when_histograms_are_uneven(qtbot):
    """Histograms at steps 0, 1, 2 and 50 (a budget spacing them): step 2's stands over 2..49, step 50's at 50."""
    view = make(qtbot, HistogramView)
    view.set_layer("fc")
    view.refresh(_one_hot_history([0, 1, 2, 50]))
    image = view.activation_map.image.image
    assert image.shape == (51, BINS)  # a column per step
    shown = image.argmax(axis=1)  # the bin each column's histogram fills
    assert shown[:3].tolist() == [0, 1, 2]
    assert set(shown[2:50].tolist()) == {2}
    assert shown[50] == 3
    rect = view.activation_map.image.mapRectToParent(view.activation_map.image.boundingRect())
    assert (rect.left(), rect.right()) == (-0.5, 50.5)


def test_a_long_span_of_histograms_is_drawn_in_at_most_max_columns_each_at_its_step(qtbot):
    from bpviz.gui.plots.held_columns import MAX_COLUMNS

    steps = list(range(0, 20_000, 10))  # economy: every 10th step, 2,000 of them over 20,000 steps
    view = make(qtbot, HistogramView)
    view.set_layer("fc")
    view.refresh(_one_hot_history(steps))
    image = view.activation_map.image.image
    assert image.shape == (MAX_COLUMNS, BINS)
    width = (steps[-1] + 1) / MAX_COLUMNS  # steps per column
    for column in (0, 1, MAX_COLUMNS // 3, MAX_COLUMNS // 2 - 1, MAX_COLUMNS - 1):
        centre = -0.5 + (column + 0.5) * width
        held = max(s for s in steps if s <= centre)  # the latest histogram at or before the column's middle
        assert image[column].argmax() == steps.index(held) % BINS


def test_histogram_view_shows_stats_and_saturation(qtbot):
    view = make(qtbot, HistogramView)
    view.set_layer("sigmoid")
    view.refresh(small_history(2))
    text = view.header.text()
    assert "saturated" in text and "50.0%" in text and "mean" in text and "std" in text


# --- dead units ----------------------------------------------------------------------------------------


def test_dead_units_curve_equals_the_dead_units_series(qtbot):
    view = make(qtbot, DeadUnitsView)
    history = small_history(6)
    view.set_layer("relu1")
    view.refresh(history)
    steps, values = history.layer_series("relu1", "dead_units")
    x, y = curve_data(view.selected_curve)
    assert x.tolist() == steps.tolist() == [0, 1, 2, 3, 4, 5]
    assert y.tolist() == values.tolist() == [0, 0, 0, 1, 1, 1]
    assert view.activity_stack.currentWidget() is view.activity_widget
    assert "1 of 4 units dead" in view.header.text()


def test_dead_units_activity_map_is_steps_by_units_with_dead_units_marked(qtbot):
    view = make(qtbot, DeadUnitsView)
    history = small_history(5)
    view.set_layer("relu1")
    view.refresh(history)
    image = view.activity_image.image
    steps, activity = history.unit_activity_series("relu1")
    assert image.shape == (5, 4)
    assert image.tolist() == activity.tolist()
    assert view.dead_markers.data["y"].tolist() == [2.0]
    history.append(record(5, small_net(5)))
    view.refresh(history)
    assert view.activity_image.image.shape == (6, 4)


def test_dead_units_activity_stands_over_its_own_steps_when_taken_every_tenth_step(qtbot):
    """Economy takes unit activity every 10 steps: the step-20 column covers steps 20..29, not a stretch of 10..30."""
    history = History()
    for step in range(0, 31, 10):
        active = np.full(4, 0.5)
        active[step // 10] = 1.0  # which unit stands out says which step's activity a column shows
        history.append(record(step, [layer("relu1", 0, family="relu", units=4, activity=active, step=step)]))
    view = make(qtbot, DeadUnitsView)
    view.set_layer("relu1")
    view.refresh(history)
    image = view.activity_image.image
    assert image.shape == (31, 4)
    assert image.argmax(axis=1).tolist() == [0] * 10 + [1] * 10 + [2] * 10 + [3]


def test_dead_units_activity_map_keeps_a_bounded_window(qtbot):
    view = make(qtbot, DeadUnitsView)
    history = small_history(ACTIVITY_STEPS + 5)
    view.set_layer("relu1")
    view.refresh(history)
    assert view.activity_image.image.shape == (ACTIVITY_STEPS, 4)
    assert len(curve_data(view.selected_curve)[0]) == ACTIVITY_STEPS + 5


def test_dead_units_view_explains_non_relu_layers(qtbot):
    view = make(qtbot, DeadUnitsView)
    history = small_history(3)
    view.set_layer("fc1")
    view.refresh(history)
    assert view.activity_stack.currentWidget() is view.note
    assert "not a ReLU-family layer" in view.note.text()
    assert curve_data(view.selected_curve)[0].tolist() == []
    assert list(view.references.curves) == ["relu1"]  # the ReLU layers stay drawn faint


# --- loss -----------------------------------------------------------------------------------------------


def test_loss_curve_is_the_losses_and_validation_markers_sit_at_their_steps(qtbot):
    view = make(qtbot, LossView)
    history = small_history(5)
    history.add_validation(1, {"accuracy": 0.5, "loss": 0.7})
    history.add_validation(3, {"accuracy": 0.6, "loss": 0.4})
    view.refresh(history)
    x, y = curve_data(view.curve)
    assert x.tolist() == history.loss_steps == [0, 1, 2, 3, 4]
    assert y.tolist() == history.losses
    vx, vy = curve_data(view.validation)
    assert vx.tolist() == [1.0, 3.0] and vy.tolist() == [0.7, 0.4]
    history.append(record(5, small_net(5)))
    view.refresh(history)
    assert curve_data(view.curve)[0].tolist() == [0, 1, 2, 3, 4, 5]


def test_the_first_loss_is_a_dot_until_a_second_joins_it(qtbot):
    """A line through one point draws nothing: after the first step the loss plot looked empty."""
    view = make(qtbot, LossView)
    history = small_history(1)
    view.refresh(history)
    assert curve_data(view.curve)[0].tolist() == [0] and view.curve.opts["symbol"] == "o"
    history.append(record(1, small_net(1)))
    view.refresh(history)
    assert view.curve.opts["symbol"] is None


def test_loss_validation_without_a_loss_draws_the_metric_on_its_own_axis(qtbot):
    view = make(qtbot, LossView)
    history = small_history(3)
    history.add_validation(2, {"accuracy": 0.9})
    view.refresh(history)
    assert curve_data(view.validation)[1].tolist() == []
    assert curve_data(view.metric_points)[1].tolist() == [0.9]
    assert "accuracy" in view.summary.text()


def test_loss_log_toggle_switches_the_axis(qtbot):
    view = make(qtbot, LossView)
    view.refresh(small_history(3))
    view.log_y.setChecked(True)
    assert view.plot.getAxis("left").logMode
    assert curve_data(view.curve)[1].tolist() == [1.0, 0.5, pytest.approx(1 / 3)]
    view.set_log_y(False)
    assert not view.log_y.isChecked() and not view.plot.getAxis("left").logMode


# --- reset ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("same_object", [False, True])
def test_views_rebuild_when_steps_restart(qtbot, same_object):
    views = [make(qtbot, cls) for cls in (HistogramView, GradientFlowView, DeadUnitsView, LossView)]
    history = small_history(6)
    for view in views:
        view.set_layer("relu1")
        view.refresh(history)
    if same_object:  # the records start over in the same History
        history.records.clear()
        history.losses.clear()
        history.loss_steps.clear()
        for step in range(2):
            history.append(record(step, small_net(step)))
        restarted = history
    else:
        restarted = small_history(2)
    for view in views:
        view.refresh(restarted)
    hist, flow, dead, loss = views
    assert hist.activation_map.image.image.shape == (2, BINS)
    assert curve_data(flow.selected_curve)[0].tolist() == [1]  # relu1 has no gradient at step 0
    assert curve_data(dead.selected_curve)[0].tolist() == [0, 1]
    assert curve_data(loss.curve)[0].tolist() == [0, 1]


def test_views_accept_an_empty_history_and_no_layer(qtbot):
    for cls in (HistogramView, GradientFlowView, DeadUnitsView, LossView):
        view = make(qtbot, cls)
        view.refresh(History())
        view.set_layer(None)
        view.refresh(small_history(2))
        assert view.export_targets()


# --- export ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [HistogramView, GradientFlowView, DeadUnitsView, LossView])
def test_exports_write_valid_png_and_svg(qtbot, tmp_path, cls):
    view = make(qtbot, cls)
    view.set_layer("relu1")
    view.refresh(small_history(4))
    view.resize(800, 600)
    targets = {"all": view, **view.export_targets()}
    for i, (name, widget) in enumerate(targets.items()):
        png = export_png(widget, tmp_path / f"{i}.png")
        assert png.read_bytes()[:8] == PNG_SIGNATURE
        svg = export_svg(widget, tmp_path / f"{i}.svg")
        root = ET.parse(svg).getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert len(list(root.iter())) > 5, name


def test_export_of_a_plot_item(qtbot, tmp_path):
    view = make(qtbot, LossView)
    view.refresh(small_history(3))
    view.resize(600, 400)
    assert export_png(view.plot, tmp_path / "p.png").read_bytes()[:8] == PNG_SIGNATURE
    root = ET.parse(export_svg(view.plot, tmp_path / "p.svg")).getroot()
    assert root.tag.endswith("svg")


def test_export_to_a_missing_folder_says_so(qtbot, tmp_path):
    view = make(qtbot, LossView)
    with pytest.raises(OSError, match="could not write"):
        export_png(view, tmp_path / "missing" / "x.png")
    with pytest.raises(OSError, match="could not write|wrote nothing"):
        export_svg(view, tmp_path / "missing" / "x.svg")


def test_a_short_log_axis_labels_whole_decades_only_and_thins_them_to_fit(qtbot):
    axis = DecadeAxis()
    axis.setLogMode(False, True)  # as PlotItem.setLogMode(y=True) does
    assert axis.tickValues(-2.6, -0.6, 50) == [(1.0, [-2.0, -1.0])]  # pyqtgraph labelled 20 minor ticks here
    assert axis.tickValues(-12.3, 0.2, 48) == [(5.0, [-10.0, -5.0, 0.0])]  # 13 decades, room for 3 labels
    assert axis.tickValues(-2.4, -2.1, 50) == [(1.0, [-2.25])]  # no power of ten in view: one label for the scale
    assert axis.tickStrings([-2.0, -1.0], 1.0, 1.0) == ["0.01", "0.1"]


def test_heatmaps_without_data_show_a_plain_unit_frame(qtbot):
    view = HistogramView()
    qtbot.addWidget(view)
    view.show()
    qtbot.waitExposed(view)
    for heatmap in (view.activation_map, view.gradient_map):
        heatmap.plot.getViewBox().updateAutoRange()  # what a layout pass does; an empty image made this ±1e-149
        assert heatmap.plot.viewRange() == [[0.0, 1.0], [0.0, 1.0]]


def test_the_histogram_of_no_layer_is_a_plain_unit_frame_not_the_last_layers_axes(qtbot):
    view = make(qtbot, HistogramView)
    history = small_history(3)
    view.set_layer("fc2")
    view.refresh(history)
    box = view.histogram_plot.getViewBox()
    box.updateAutoRange()  # what a layout pass does
    assert view.histogram_plot.viewRange()[0][0] < -1.9  # fc2's values, -2..2
    view.set_layer(None)
    box.updateAutoRange()
    assert view.histogram_plot.viewRange() == [[0.0, 1.0], [0.0, 1.0]]
    assert "select a layer" in view.header.text()
