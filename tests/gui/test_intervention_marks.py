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


def test_labels_of_marks_in_a_row_are_drawn_at_different_heights(qtbot):
    """A remedy and its undo a step apart drew one label over the other on the loss plot."""
    import pyqtgraph as pg

    from bpviz.gui.plots.intervention_marks import InterventionMarks

    plot = pg.PlotItem()
    marks = InterventionMarks(plot, labels=True)
    history = History()
    history.interventions += [(6, "relu2: ReLU -> LeakyReLU"), (7, "undo: relu2: ReLU -> LeakyReLU"), (9, "lr")]
    marks.update(history)
    heights = [next(c for c in line.childItems() if isinstance(c, pg.InfLineLabel)).orthoPos for line in marks.lines]
    assert len(set(heights)) == 3


def test_a_label_reads_away_from_the_nearer_edge_of_the_view(qtbot):
    """A remedy just applied sits at the newest step, the right edge of the view: its label, drawn to the right of
    its line, was cut to "rel"."""
    import pyqtgraph as pg

    from bpviz.gui.plots.intervention_marks import InterventionMarks

    widget = pg.PlotWidget()
    qtbot.addWidget(widget)
    plot = widget.getPlotItem()
    plot.setXRange(0, 100, padding=0)
    marks = InterventionMarks(plot, labels=True)
    history = History()
    history.interventions += [(10, "lr 0.5 -> 0.05"), (95, "relu2: ReLU -> LeakyReLU")]
    marks.update(history)

    def sides() -> list[float]:
        labels = [next(c for c in line.childItems() if isinstance(c, pg.InfLineLabel)) for line in marks.lines]
        return [label.anchor.x() for label in labels]

    assert sides() == [0.0, 1.0]  # the early one's text to the right of its line, the newest one's to the left
    plot.setXRange(90, 200, padding=0)  # scrolled on: the newest mark is at the left edge now
    assert sides()[1] == 0.0


def test_labels_keep_their_rows_apart_in_a_low_plot(qtbot):
    """In the workbench's low plot a row of a twelfth of its height drew an undo's label over its remedy's."""
    import pyqtgraph as pg

    from bpviz.gui.plots.intervention_marks import LABEL_PX, InterventionMarks

    widget = pg.PlotWidget()
    qtbot.addWidget(widget)
    widget.resize(400, 110)
    widget.show()
    qtbot.waitExposed(widget)
    plot = widget.getPlotItem()
    marks = InterventionMarks(plot, labels=True)
    history = History()
    history.interventions += [(6, "relu2: ReLU -> LeakyReLU"), (7, "undo: relu2: ReLU -> LeakyReLU")]
    marks.update(history)
    height = plot.getViewBox().height()
    labels = [next(c for c in line.childItems() if isinstance(c, pg.InfLineLabel)) for line in marks.lines]
    assert (labels[0].orthoPos - labels[1].orthoPos) * height >= LABEL_PX


def test_a_mark_on_the_first_step_is_drawn_on_it(qtbot):
    """Two runs that differ from their first step diverge at step 0: a mark between it and the step before sat at
    -0.5, left of every view, its label cut."""
    import pyqtgraph as pg

    from bpviz.gui.plots.intervention_marks import InterventionMarks
    from tests.gui.record_factory import small_history

    marks = InterventionMarks(pg.PlotItem())
    history = small_history(4)
    history.marks += [(0, "the runs diverge here (loss)"), (2, "lr")]
    marks.update(history)
    assert [line.value() for line in marks.lines] == [0, 1.5]
