"""Zero, NaN/Inf and "not measured" gradients look different and are labelled in every view that shows gradients.

A zero gradient is the central symptom of a dead layer; drawing it as a gap
in the data hides the very thing the user is looking for.
"""

from __future__ import annotations

import pytest
from PySide6.QtGui import QColor

from bpviz.engine.record.history import History
from bpviz.gui import theme
from bpviz.gui.panels.layer_table import GRAD, NAME, LayerTableModel
from bpviz.gui.plots.gradient_flow_view import GradientFlowView
from bpviz.gui.plots.network_view import NetworkView
from tests.gui.record_factory import layer, record

# forward order: a measured gradient, a zero one (below a dead layer), a NaN one, one that never reached its output
LAYERS = [
    layer("embed", 0, grad_norm=None),
    layer("fc1", 1, grad_norm=0.0),
    layer("act1", 2, grad_norm=float("nan"), grad_nonfinite=True),
    layer("fc2", 3, grad_norm=0.25),
]


@pytest.fixture
def history() -> History:
    h = History()
    h.append(record(0, LAYERS))
    return h


def test_gradient_flow_draws_each_state_with_its_own_mark(qtbot, history):
    view = GradientFlowView()
    qtbot.addWidget(view)
    view.refresh(history)
    x, norms = view.plotted_norms()
    assert x.tolist() == [3.0] and norms == pytest.approx([0.25])  # only the measured norm is a bar
    assert view.zero_marks.data["x"].tolist() == [1.0]
    assert view.nonfinite_bars.opts["x"].tolist() == [2.0]
    assert view.missing.data["x"].tolist() == [0.0]
    legend = view.legend.text()
    assert "0 (no gradient)" in legend and "NaN/Inf" in legend and "not measured" in legend
    header = view.header.text()
    assert header.index("1 NaN/Inf") < header.index("gradient norm per layer")  # the warning first, never cut
    assert "1 with no gradient" in header


@pytest.mark.parametrize("name, label", [("embed", "not measured"), ("fc1", "0 (no gradient)"), ("act1", "NaN/Inf")])
def test_gradient_flow_header_names_the_selected_layers_state(qtbot, history, name, label):
    view = GradientFlowView()
    qtbot.addWidget(view)
    view.set_layer(name)
    view.refresh(history)
    assert f"{name} " in view.header.text() and label in view.header.text()


def test_the_table_says_zero_nan_and_not_measured(qtbot, history):
    model = LayerTableModel()
    model.update(history.latest, [])
    shown = {model.data(model.index(r, NAME)): model.data(model.index(r, GRAD)) for r in range(model.rowCount())}
    assert shown == {"embed": "not measured", "fc1": "0 (no gradient)", "act1": "NaN/Inf", "fc2": "2.50e-01"}
    colour = {model.data(model.index(r, NAME)): model.data(model.index(r, GRAD), 9) for r in range(model.rowCount())}
    assert colour["fc1"].color().name() == theme.ZERO_GRADIENT and colour["act1"].color().name() == theme.BAD
    assert colour["embed"] is None and colour["fc2"] is None
    tips = {model.data(model.index(r, NAME)): model.data(model.index(r, GRAD), 3) for r in range(model.rowCount())}
    assert tips["fc1"].startswith("The gradient reaching this layer's output is exactly zero")
    assert "NaN or Inf" in tips["act1"] and tips["embed"].startswith("No gradient reached") and tips["fc2"] is None


def test_the_network_colours_and_labels_each_state(qtbot, history):
    view = NetworkView()
    qtbot.addWidget(view)
    view.refresh(history)
    assert view.metric_box.currentData() == "grad"  # no ReLU-family layer: dead units would say nothing
    items = view.items
    assert items["fc2"].value_text == "‖g‖ 0.2"
    assert items["fc1"].value_text == "0 (no gradient)" and items["fc1"].fill.name() == theme.ZERO_GRADIENT
    assert items["act1"].value_text == "NaN/Inf" and items["act1"].fill.name() == theme.BAD
    assert items["embed"].value_text == "not measured"
    assert len({items[n].fill.name() for n in ("embed", "fc1", "act1", "fc2")}) == 4
    labels = [label for _, label in view.legend.swatches]
    assert labels == ["0 (no gradient)", "NaN/Inf", "not measured"]


def test_network_numbers_read_as_numbers(qtbot):
    view = NetworkView()
    qtbot.addWidget(view)
    history = History()
    history.append(record(0, [layer("a", 0, grad_norm=4e-10), layer("b", 1, grad_norm=3.0)]))
    view.refresh(history)
    assert view.items["a"].value_text == "‖g‖ 4e-10"
    assert view.items["b"].value_text == "‖g‖ 3"
    assert (view.legend.lo_text, view.legend.hi_text) == ("3e-10", "3")  # the legend's ends: 10^-9.5 and 10^0.5


def test_the_network_opens_with_a_metric_that_fits_the_model(qtbot):
    view = NetworkView()
    qtbot.addWidget(view)
    relu = History()
    relu.append(record(0, [layer("fc", 0), layer("relu", 1, family="relu", units=4, dead=[1])]))
    sigmoid = History()
    sigmoid.append(record(0, [layer("fc", 0), layer("sig", 1, family="sigmoid", saturated=0.2)]))
    view.refresh(relu)
    assert view.metric_box.currentData() == "dead"
    view.clear()  # another file
    view.refresh(sigmoid)
    assert view.metric_box.currentData() == "grad"
    view.set_metric("saturation")  # chosen (by a finding or the user): kept while the model stays
    view.refresh(sigmoid)
    assert view.metric_box.currentData() == "saturation"
    view.clear()
    view.refresh(relu)
    assert view.metric_box.currentData() == "dead"


def test_network_nodes_take_the_colour_scale_ends_at_the_range_ends(qtbot):
    view = NetworkView()
    qtbot.addWidget(view)
    history = History()
    history.append(
        record(0, [layer("a", 0, grad_norm=1e-9), layer("b", 1, grad_norm=1.0), layer("c", 2, grad_norm=1e-3)])
    )
    view.refresh(history)
    colours = [QColor(c).name() for c in view.colouring().colours]
    assert view.items["a"].fill.name() == colours[0] and view.items["b"].fill.name() == colours[-1]
    assert view.items["c"].fill.name() not in (colours[0], colours[-1])


def test_the_network_hint_wraps_in_a_narrow_dock_instead_of_being_cut(qtbot):
    view = NetworkView()
    qtbot.addWidget(view)
    history = History()
    history.append(record(0, [layer("a", 0, grad_norm=1.0), layer("b", 1, grad_norm=2.0)]))
    view.refresh(history)
    assert "a block to collapse or expand it" in view.status.text()
    one_line = view.status.heightForWidth(2000)
    assert view.status.heightForWidth(300) > one_line > 0  # at a 1280x800 screen's dock width: two lines


def test_the_legend_cuts_its_labels_to_fit_and_keeps_them_whole_in_its_tooltip(qtbot):
    from bpviz.gui.plots.network_items import Legend

    legend = Legend()
    qtbot.addWidget(legend)
    swatches = [(theme.NO_DATA, "inactive, not dead (leaky)"), (theme.NO_DATA, "no data")]
    legend.set_range(theme.SCALES["bad"], "0%", "100%", swatches)
    metrics = legend.fontMetrics()
    assert legend.shown_labels(metrics, 1000) == ["inactive, not dead (leaky)", "no data"]
    narrow = legend.shown_labels(metrics, 120)
    assert all(label.endswith("…") or label in ("no data",) for label in narrow) and narrow[0].endswith("…")
    assert sum(metrics.horizontalAdvance(label) + 28 for label in narrow) <= 120
    assert "inactive, not dead (leaky)" in legend.toolTip() and "no data" in legend.toolTip()


def test_a_zero_norm_from_a_sample_is_not_called_no_gradient(qtbot):
    """The economy level's 0.0 from a sample that held no nonzero value may hide a few live units: every view
    says "≈0 (sampled)", never "no gradient", and the network lists it in its key only when shown."""
    history = History()
    sampled = [layer("fc1", 0, grad_norm=0.0, grad_norm_sampled=True), layer("fc2", 1, grad_norm=0.0)]
    history.append(record(0, sampled))
    flow = GradientFlowView()
    qtbot.addWidget(flow)
    flow.set_layer("fc1")
    flow.refresh(history)
    assert flow.zero_marks.data["x"].tolist() == [0.0, 1.0]  # both at the floor, below every norm
    header = flow.header.text()
    assert "1 with no gradient" in header and "1 ≈0 in their sample" in header
    assert "fc1 " in header and "≈0 (sampled)" in header
    model = LayerTableModel()
    model.update(history.latest, [])
    assert model.data(model.index(0, GRAD)) == "≈0 (sampled)"
    assert "estimated from that sample" in model.data(model.index(0, GRAD), 3)
    assert model.data(model.index(1, GRAD)) == "0 (no gradient)"
    network = NetworkView()
    qtbot.addWidget(network)
    network.refresh(history)
    assert network.items["fc1"].value_text == "≈0 (sampled)"
    assert [label for _, label in network.legend.swatches] == [
        "0 (no gradient)",
        "≈0 (sampled)",
        "NaN/Inf",
        "not measured",
    ]
