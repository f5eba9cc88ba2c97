"""The layer table and the findings list tell Qt only what changed: the right cells, re-sorted only when needed."""

from __future__ import annotations

import dataclasses
import math

from PySide6.QtCore import QModelIndex, QPoint, Qt
from PySide6.QtWidgets import QTableView

from bpviz.engine.diagnosis.finding import Finding
from bpviz.engine.record.records import LayerStep, StepRecord
from bpviz.gui.panels.findings_panel import FindingsModel
from bpviz.gui.panels.layer_table import COLUMNS, GRAD, NAME, LayerSortProxy, LayerTableModel, table_csv

MEAN = next(i for i, c in enumerate(COLUMNS) if c.title == "Mean")
STD = next(i for i, c in enumerate(COLUMNS) if c.title == "Std")


def _layers(means=(0.5, -1.0, 2.0, 0.0), grads=(3.0, 1.0, 4.0, 2.0)) -> list[LayerStep]:
    return [
        LayerStep(name=f"fc{i}", type="Linear", shape=(8, 4), family=None, order=i, mean=m, std=1.0, grad_norm=g)
        for i, (m, g) in enumerate(zip(means, grads))
    ]


def _table() -> tuple[LayerTableModel, LayerSortProxy, list[tuple[int, int, int, int]]]:
    """A model over `_layers`, its proxy, and the (top, left, bottom, right) of every dataChanged it emits."""
    model = LayerTableModel()
    proxy = LayerSortProxy()
    proxy.setSourceModel(model)
    model.update(StepRecord(step=0, loss=1.0, layers=_layers()), [])
    signals: list[tuple[int, int, int, int]] = []

    def note(top_left: QModelIndex, bottom_right: QModelIndex, _roles=()) -> None:
        signals.append((top_left.row(), top_left.column(), bottom_right.row(), bottom_right.column()))

    model.dataChanged.connect(note)
    return model, proxy, signals


def _order(proxy: LayerSortProxy) -> list[str]:
    return [proxy.data(proxy.index(r, NAME)) for r in range(proxy.rowCount())]


def test_a_change_of_one_cell_signals_that_cell_and_keeps_the_order_of_another_column():
    model, proxy, signals = _table()
    proxy.sort(GRAD, Qt.SortOrder.AscendingOrder)
    assert _order(proxy) == ["fc1", "fc3", "fc0", "fc2"]
    row = model.row_of("fc2")
    assert row == 3 and model.data(model.index(row, MEAN)) == "2"
    model.update(StepRecord(step=1, loss=1.0, layers=_layers(means=(0.5, -1.0, 7.25, 0.0))), [])
    assert signals == [(row, MEAN, row, MEAN)]
    assert model.data(model.index(row, MEAN)) == "7.25"
    assert [model.data(model.index(model.row_of(n), MEAN)) for n in ("fc0", "fc1", "fc3")] == ["0.5", "-1", "0"]
    assert _order(proxy) == ["fc1", "fc3", "fc0", "fc2"]


def test_an_unchanged_step_signals_nothing_and_a_nan_stays_the_same_nan():
    model, _proxy, signals = _table()
    model.update(StepRecord(step=1, loss=1.0, layers=_layers()), [])
    assert signals == []
    nan = _layers(means=(math.nan, -1.0, 2.0, 0.0))
    model.update(StepRecord(step=2, loss=1.0, layers=nan), [])
    model.update(StepRecord(step=3, loss=1.0, layers=[dataclasses.replace(layer) for layer in nan]), [])
    assert signals == [(0, MEAN, 0, MEAN)]
    assert model.data(model.index(0, MEAN)) == "nan"


def test_adjacent_columns_changing_over_the_same_rows_are_one_signal():
    model, _proxy, signals = _table()
    layers = [dataclasses.replace(layer, mean=layer.mean + 1, std=2.0) for layer in _layers()]
    model.update(StepRecord(step=1, loss=1.0, layers=layers), [])
    assert MEAN + 1 == STD and signals == [(0, MEAN, 3, STD)]
    assert [model.data(model.index(r, STD)) for r in range(4)] == ["2"] * 4


def test_sorted_by_a_changing_column_the_rows_re_sort_and_the_selection_follows_its_layer(qtbot):
    model, proxy, _signals = _table()
    view = QTableView()
    qtbot.addWidget(view)
    view.setModel(proxy)
    proxy.sort(MEAN, Qt.SortOrder.AscendingOrder)
    assert _order(proxy) == ["fc1", "fc3", "fc0", "fc2"]
    view.selectRow(_order(proxy).index("fc0"))
    model.update(StepRecord(step=1, loss=1.0, layers=_layers(means=(9.0, -1.0, 2.0, -5.0))), [])
    assert _order(proxy) == ["fc3", "fc1", "fc2", "fc0"]
    selected = view.selectionModel().selectedRows()
    assert [proxy.data(i.siblingAtColumn(NAME)) for i in selected] == ["fc0"]


def test_a_finding_marks_its_layer_in_place():
    model, _proxy, signals = _table()
    finding = Finding(kind="dead_relu", severity="error", layer="fc2", step=1, message="dead")
    model.update(StepRecord(step=1, loss=1.0, layers=_layers()), [finding])
    assert signals == [(2, 0, 2, 0)]
    assert model.status("fc2") == "error"


def _finding(kind: str, severity: str = "warning", message: str = "m", step: int = 0) -> Finding:
    return Finding(kind=kind, severity=severity, layer="fc1", step=step, message=message)


def test_findings_whose_message_alone_changed_are_repainted_without_touching_the_sorted_column():
    model = FindingsModel()
    model.set_findings([_finding("a"), _finding("b"), _finding("c")])
    signals: list[tuple[int, int, int, int]] = []
    model.dataChanged.connect(lambda tl, br, _r=(): signals.append((tl.row(), tl.column(), br.row(), br.column())))
    model.set_findings([_finding("a"), _finding("b"), _finding("c")])
    assert signals == []
    model.set_findings([_finding("a"), _finding("b", message="worse"), _finding("c")])
    assert signals == [(1, 1, 1, 4)]
    assert model.data(model.index(1, 4)) == "worse"
    model.set_findings([_finding("a"), _finding("b", message="worse"), _finding("c", severity="error")])
    assert signals[1:] == [(2, 0, 2, 4)]


def test_a_finding_changed_in_place_shows_what_was_signalled():
    """The engine updates its findings in place: the model compares against its own copy, not the object."""
    model = FindingsModel()
    finding = _finding("a")
    model.set_findings([finding])
    signals: list[int] = []
    model.dataChanged.connect(lambda tl, _br, _r=(): signals.append(tl.row()))
    finding.severity = "error"
    assert model.data(model.index(0, 0)) == "warning"
    model.set_findings([finding])
    assert signals == [0] and model.data(model.index(0, 0)) == "error"


def test_the_sort_holds_for_a_new_model_and_descending_keeps_ties_in_forward_order():
    model, proxy, _signals = _table()
    proxy.sort(STD, Qt.SortOrder.DescendingOrder)
    assert _order(proxy) == ["fc0", "fc1", "fc2", "fc3"]  # all std 1.0: forward order
    proxy.sort(GRAD, Qt.SortOrder.DescendingOrder)
    assert _order(proxy) == ["fc2", "fc0", "fc3", "fc1"]
    renamed = [dataclasses.replace(layer, name=f"new{layer.order}") for layer in _layers()]
    model.update(StepRecord(step=1, loss=1.0, layers=renamed), [])
    assert _order(proxy) == ["new2", "new0", "new3", "new1"]
    assert model.names() == ["new0", "new1", "new2", "new3"]  # forward order, whatever the rows are sorted by
    proxy.sort(-1, Qt.SortOrder.AscendingOrder)
    assert _order(proxy) == model.names()


def test_a_header_click_sorts_the_view_and_a_changing_sort_column_re_sorts(qtbot):
    model, proxy, signals = _table()
    view = QTableView()
    qtbot.addWidget(view)
    view.setModel(proxy)
    view.setSortingEnabled(True)
    view.sortByColumn(-1, Qt.SortOrder.AscendingOrder)
    assert _order(proxy) == ["fc0", "fc1", "fc2", "fc3"]
    view.resize(1600, 300)
    view.show()
    header = view.horizontalHeader()
    qtbot.mouseClick(
        header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(header.sectionViewportPosition(GRAD) + 5, 5)
    )
    assert header.sortIndicatorSection() == GRAD and header.sortIndicatorOrder() == Qt.SortOrder.AscendingOrder
    assert _order(proxy) == ["fc1", "fc3", "fc0", "fc2"]
    model.update(StepRecord(step=1, loss=1.0, layers=_layers(grads=(3.0, 1.0, 0.5, 2.0))), [])
    assert _order(proxy) == ["fc2", "fc1", "fc3", "fc0"]
    assert signals == [(0, GRAD, 0, GRAD)]  # fc2's cell, in its new row
    assert proxy.data(proxy.index(0, GRAD)) == "5.00e-01"


def test_a_filtered_table_stays_filtered_and_sorted_as_its_rows_re_sort():
    model, proxy, _signals = _table()
    proxy.sort(MEAN, Qt.SortOrder.AscendingOrder)
    proxy.setFilterFixedString("FC")  # case-insensitive
    layers = [dataclasses.replace(layer, name="relu" if layer.order == 1 else layer.name) for layer in _layers()]
    model.update(StepRecord(step=0, loss=1.0, layers=layers), [])
    assert _order(proxy) == ["fc3", "fc0", "fc2"]  # relu (mean -1) filtered out
    moved = [dataclasses.replace(layer, mean=-layer.mean) for layer in layers]
    model.update(StepRecord(step=1, loss=1.0, layers=moved), [])
    assert _order(proxy) == ["fc2", "fc0", "fc3"]
    assert table_csv(proxy).splitlines()[1].split(",")[1] == "fc2"


def test_the_selected_finding_stays_selected_when_another_goes(qtbot):
    """Scrubbing back before a finding was raised resets the list; the one selected was dropped with it."""
    from bpviz.gui.panels.findings_panel import FindingsPanel

    panel = FindingsPanel()
    qtbot.addWidget(panel)
    a, b = _finding("a", message="61 of 64 units dead"), _finding("b")
    panel.set_findings([a, b])
    assert panel.select(a.key)
    chosen: list = []
    panel.finding_selected.connect(chosen.append)
    panel.set_findings([a])  # b is gone: the model is reset
    assert panel.selected() is not None and panel.selected().key == a.key
    assert chosen == []  # put back, not chosen anew: the window does not jump to its layer again
    assert "61 of 64 units dead" in panel.explanation.toPlainText()
    panel.set_findings([b])  # the selected one gone too: nothing selected
    assert panel.selected() is None
