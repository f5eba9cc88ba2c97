"""The layer table uses the right word: dead for a ReLU layer, inactive (not dead) once a remedy swapped in LeakyReLU."""
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
    for record, colour, tip in ((relu, "#c62828", None), (leaky, theme.MUTED, "Inactive, not dead: LeakyReLU")):
        model.update(record, [])
        row = next(r for r in range(model.rowCount()) if model.data(model.index(r, NAME)) == "act")
        index = model.index(row, DEAD)
        assert model.data(index) == "3"
        assert model.data(index, Qt.ItemDataRole.ForegroundRole).color().name() == colour
        shown = model.data(index, Qt.ItemDataRole.ToolTipRole)
        assert (shown is None) if tip is None else shown.startswith(tip)
