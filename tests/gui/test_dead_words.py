"""The table and the network use the right word: dead for a ReLU layer, inactive (not dead) after a LeakyReLU swap."""

from __future__ import annotations

from PySide6.QtCore import Qt

from bpviz.engine.session import remedies
from bpviz.gui import theme
from bpviz.gui.panels.layer_table import DEAD, NAME, LayerTableModel
from tests.engine.test_remedies import run, small


def test_the_table_says_inactive_not_dead_after_the_swap(qtbot):
    stepper = small(dead=3)
    relu = run(stepper, 3)
    stepper.apply(remedies.replace_activation(stepper, "act", "leaky_relu"))
    leaky = run(stepper, 1)
    stepper.close()
    model = LayerTableModel()
    for record, colour, tip in ((relu, theme.DEAD, None), (leaky, theme.MUTED, "Inactive, not dead: LeakyReLU")):
        model.update(record, [])
        row = next(r for r in range(model.rowCount()) if model.data(model.index(r, NAME)) == "act")
        index = model.index(row, DEAD)
        assert model.data(index) == "3"
        assert model.data(index, Qt.ItemDataRole.ForegroundRole).color().name() == colour
        shown = model.data(index, Qt.ItemDataRole.ToolTipRole)
        assert (shown is None) if tip is None else shown.startswith(tip)


def test_the_network_says_inactive_not_dead_and_shows_the_new_type(qtbot):
    from bpviz.engine.record.history import History
    from bpviz.gui.plots.network_view import NetworkView

    stepper = small(dead=3)
    history = History()
    for _ in range(3):
        history.append(stepper.step())
    view = NetworkView()
    qtbot.addWidget(view)
    view.refresh(history)
    assert view.items["act"].value_text == "38% dead" and view.items["act"].subtitle == "ReLU"
    stepper.apply(remedies.replace_activation(stepper, "act", "leaky_relu"))
    history.append(stepper.step())
    stepper.close()
    view.refresh(history)
    assert view.items["act"].value_text == "inactive, not dead"
    assert view.items["act"].subtitle == "LeakyReLU"
    assert (theme.MUTED, "inactive, not dead") in view.legend.swatches


def test_the_dead_units_tab_says_inactive_not_dead(qtbot):
    from bpviz.engine.record.history import History
    from bpviz.gui.plots.dead_units_view import DeadUnitsView

    stepper = small(dead=3)
    history = History()
    for _ in range(3):
        history.append(stepper.step())
    view = DeadUnitsView()
    qtbot.addWidget(view)
    view.set_layer("act")
    view.refresh(history)
    assert "3 of 8 units dead (37.5%)" in view.header.text()
    stepper.apply(remedies.replace_activation(stepper, "act", "leaky_relu"))
    history.append(stepper.step())
    stepper.close()
    view.refresh(history)
    assert "3 of 8 units inactive, not dead (LeakyReLU passes them a gradient)" in view.header.text()
