"""The window's parts on their own: layer table model, findings panel, settings, error panel, dialogs' parsing."""

from __future__ import annotations

import csv
import io

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QVBoxLayout, QWidget

from bpviz.engine.diagnosis.finding import Finding
from bpviz.engine.record.records import LayerStep, StepRecord
from bpviz.engine.user_error import UserCodeError
from bpviz.gui.panels.findings_panel import FindingsPanel, mode_findings, ordered
from bpviz.gui.panels.layer_table import DEAD, NAME, SORT_ROLE, STATUS, LayerSortProxy, LayerTableModel, table_csv
from bpviz.gui.window.dialogs import parse_shape
from bpviz.gui.window.error_panel import ErrorPanel
from bpviz.gui.window.settings import MAX_RECENT, Settings


def _record(step: int, dead: int = 0, names=("fc1", "relu1", "fc2")) -> StepRecord:
    layers = []
    for order, name in enumerate(names):
        relu = name.startswith("relu")
        layers.append(
            LayerStep(
                name=name,
                type="ReLU" if relu else "Linear",
                shape=(8, 16),
                family="relu" if relu else None,
                order=order,
                mean=0.1 * order + step,
                std=1.0,
                zero_fraction=0.5 if relu else 0.0,
                units=16 if relu else None,
                dead_units=dead if relu else None,
                grad_norm=None if relu else 10.0**-order,
                update_ratio=1e-3,
            )
        )
    return StepRecord(step=step, loss=1.0, layers=layers)


def _finding(kind="dead_relu", severity="error", layer="relu1", step=0, active=True) -> Finding:
    return Finding(
        kind=kind,
        severity=severity,
        layer=layer,
        step=step,
        message=f"{kind} on {layer}",
        explanation="Because.",
        remedies=["Do this.", "Or that."],
        active=active,
    )


def test_rows_update_in_place_and_keep_the_selection(qtbot):
    model = LayerTableModel()
    proxy = LayerSortProxy()
    proxy.setSourceModel(model)
    model.update(_record(0), [])
    resets = []
    model.modelReset.connect(lambda: resets.append(1))
    from PySide6.QtWidgets import QTableView

    view = QTableView()
    qtbot.addWidget(view)
    view.setModel(proxy)
    view.selectRow(1)
    model.update(_record(1, dead=5), [_finding()])
    assert resets == []
    selected = view.selectionModel().selectedRows()
    assert [proxy.data(i.siblingAtColumn(NAME)) for i in selected] == ["relu1"]
    assert model.data(model.index(1, DEAD)) == "5"
    assert model.status("relu1") == "error"
    model.update(_record(2, names=("a", "b")), [])
    assert resets == [1]
    assert model.rowCount() == 2


def test_sorting_uses_numbers_and_puts_missing_values_first():
    model = LayerTableModel()
    proxy = LayerSortProxy()
    proxy.setSourceModel(model)
    model.update(_record(0, names=("fc1", "relu1", "fc2", "fc3")), [_finding(severity="warning", layer="fc2")])
    grad = 10  # Grad norm column
    proxy.sort(grad, Qt.SortOrder.AscendingOrder)
    order = [proxy.data(proxy.index(r, NAME)) for r in range(proxy.rowCount())]
    assert order == ["relu1", "fc3", "fc2", "fc1"]  # None first, then 1e-3, 1e-2, 1
    proxy.sort(STATUS, Qt.SortOrder.DescendingOrder)
    assert proxy.data(proxy.index(0, NAME)) == "fc2"
    assert proxy.index(0, STATUS).data(SORT_ROLE) == 1


def test_filter_by_name():
    model = LayerTableModel()
    proxy = LayerSortProxy()
    proxy.setSourceModel(model)
    model.update(_record(0), [])
    proxy.setFilterFixedString("RELU")
    assert proxy.rowCount() == 1


def test_csv_has_a_header_and_one_row_per_layer_with_raw_values():
    model = LayerTableModel()
    model.update(_record(0, dead=3), [_finding()])
    rows = list(csv.reader(io.StringIO(table_csv(model))))
    assert rows[0][:6] == ["status", "layer", "type", "dead", "units", "shape"]
    assert len(rows) == 4
    relu = rows[2]
    assert relu[0] == "error" and relu[1] == "relu1" and relu[3] == "3" and relu[4] == "16" and relu[5] == "8x16"
    assert rows[1][3] == ""  # not a ReLU layer: no dead count


def test_findings_panel_orders_worst_first_and_explains_the_selection(qtbot):
    panel = FindingsPanel()
    qtbot.addWidget(panel)
    findings = [_finding(severity="info", layer="fc1", kind="k1"), _finding(), _finding(kind="old", active=False)]
    panel.set_findings(findings)
    assert [f.kind for f in panel.in_view_order()] == ["dead_relu", "k1", "old"]
    assert panel.in_view_order() == ordered(findings)
    with qtbot.waitSignal(panel.finding_selected) as blocker:
        assert panel.select(("dead_relu", "relu1"))
    assert blocker.args[0].layer == "relu1"
    text = panel.explanation.toPlainText()
    assert "dead_relu on relu1" in text and "Because." in text and "Or that." in text
    # a refresh with the same findings keeps the selection
    panel.set_findings([_finding(kind="new", layer="fc2", severity="warning")] + findings)
    assert panel.selected().key == ("dead_relu", "relu1")
    assert [f.kind for f in panel.in_view_order()] == ["dead_relu", "new", "k1", "old"]
    # a finding that gets worse moves up, and the selection follows it
    panel.set_findings([_finding(kind="new", layer="fc2", severity="error", step=-1)] + findings)
    assert [f.kind for f in panel.in_view_order()][:2] == ["new", "dead_relu"]
    assert panel.selected().key == ("dead_relu", "relu1")


def test_mode_findings_feed_the_banner():
    findings = [
        _finding(kind="train_mode_in_eval", layer=None),
        _finding(),
        _finding(kind="eval_mode_in_training", active=False),
    ]
    assert [f.kind for f in mode_findings(findings)] == ["train_mode_in_eval"]


def test_recent_files_newest_first_without_duplicates(tmp_path):
    settings = Settings(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    files = []
    for i in range(MAX_RECENT + 2):
        f = tmp_path / f"m{i}.py"
        f.write_text("")
        files.append(f)
        settings.add_recent(f)
    settings.add_recent(files[5])
    recent = settings.recent_files()
    assert recent[0] == files[5].resolve()
    assert len(recent) == MAX_RECENT and len(set(recent)) == MAX_RECENT
    files[-1].unlink()
    assert files[-1].resolve() not in settings.recent_files()
    again = Settings(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    assert again.recent_files()[0] == files[5].resolve()


def test_error_panel_shows_where_and_hides_the_traceback_until_asked(qtbot):
    host = QWidget()  # the panel sits above a page; its traceback unfolds over that page
    qtbot.addWidget(host)
    panel = ErrorPanel()
    QVBoxLayout(host).addWidget(panel)
    host.resize(600, 400)
    host.show()
    panel.show_error(
        UserCodeError("the forward pass failed at step 3", "ValueError: boom", "model.py:12", "fc2", "Traceback…")
    )
    assert panel.isVisibleTo(None) or not panel.isHidden()
    assert "model.py:12" in panel.summary.text() and "fc2" in panel.summary.text()
    assert panel.details.isHidden()
    panel.details_button.click()
    assert not panel.details.isHidden()
    assert panel.details.toPlainText() == "Traceback…"
    panel.dismiss_button.click()
    assert panel.isHidden()


def test_parse_shape():
    assert parse_shape("8, 3, 32, 32") == (8, 3, 32, 32)
    assert parse_shape("(1,784)") == (1, 784)
    assert parse_shape("4x10") == (4, 10)
    assert parse_shape("eight") is None
    assert parse_shape("0, 3") is None
