"""Validation accuracy is not drawn on the loss axis, and nothing covers the newest points."""

from __future__ import annotations

import numpy as np

from bpviz.gui.plots.loss_view import LossView
from tests.gui.record_factory import small_history


def test_accuracy_gets_its_own_axis_and_the_loss_axis_stays_on_losses(qtbot):
    view = LossView()
    qtbot.addWidget(view)
    view.resize(600, 300)
    view.show()
    qtbot.waitExposed(view)
    history = small_history(8)
    history.add_validation(3, {"loss": 0.7, "accuracy": 0.49})
    history.add_validation(7, {"loss": 0.4, "accuracy": 0.81})
    view.refresh(history)
    assert np.asarray(view.validation.yData).tolist() == [0.7, 0.4]  # the validation loss beside the training loss
    assert np.asarray(view.metric_points.yData).tolist() == [0.49, 0.81]
    assert view.metric_points.getViewBox() is view.metric_view is not view.plot.getViewBox()
    right = view.plot.getAxis("right")
    assert right.isVisible() and "accuracy" in right.labelText
    assert view.plot.getAxis("left").labelText == "loss"
    lo, hi = view.metric_view.viewRange()[1]
    assert lo <= 0.49 and hi >= 0.81  # the metric's own scale
    assert view.metric_view.viewRange()[0] == view.plot.getViewBox().viewRange()[0]  # one step axis
    summary = view.summary.full_text()  # all it says; a narrow pane shows the leading parts that fit
    assert "validation accuracy" in summary and "right axis" in summary and "validation loss" in summary


def test_no_legend_sits_on_the_plot(qtbot):
    view = LossView()
    qtbot.addWidget(view)
    history = small_history(5)
    history.add_validation(4, {"loss": 0.3})
    view.refresh(history)
    assert view.plot.legend is None  # the header names the marks instead; nothing covers the newest steps
    assert "training loss" in view.summary.text()
    assert not view.plot.getAxis("right").isVisible()  # no metric other than loss: no second axis
