"""Remedy and hyperparameter marks land on every plot over steps, once each, and follow a replaced history."""

from __future__ import annotations

import pytest

from bpviz.engine.record.history import History
from bpviz.gui.plots.dead_units_view import DeadUnitsView
from bpviz.gui.plots.gradient_flow_view import GradientFlowView
from bpviz.gui.plots.loss_view import LossView


@pytest.mark.parametrize(
    "view_class, attr", [(LossView, "plot"), (DeadUnitsView, "count_plot"), (GradientFlowView, "time")]
)
def test_interventions_are_drawn_as_vertical_marks(qtbot, view_class, attr):
    view = view_class()
    qtbot.addWidget(view)
    history = History()
    history.interventions.append((3, "lr 0.5 -> 0.05"))
    view.refresh(history)
    assert [line.value() for line in view.marks.lines] == [2.5]
    assert view.marks.lines[0] in getattr(view, attr).items
    history.interventions.append((7, "undo: lr 0.5 -> 0.05"))
    view.refresh(history)
    view.refresh(history)
    assert [line.value() for line in view.marks.lines] == [2.5, 6.5]
    view.refresh(History())  # a reset: the marks go with the old history
    assert view.marks.lines == []
