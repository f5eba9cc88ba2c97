"""The window fits the screen it opens on and stays readable there: 1280x800 laptops and 1600x1000 monitors.

The offscreen platform has one small screen, so each test hands the window the
screen area it should fit (`reset_layout(QRect)`), as a smaller or larger monitor would.
"""

from __future__ import annotations

from pathlib import Path

import pyqtgraph as pg
import pytest
from PySide6.QtCore import QPoint, QRect, QSettings
from PySide6.QtGui import QFont, QFontInfo, QFontMetrics, QTextDocument, QTextDocumentFragment
from PySide6.QtWidgets import QApplication

import bpviz.gui
from bpviz.gui.window import geometry
from bpviz.gui.window.main_window import MainWindow
from bpviz.gui.window.settings import Settings
from tests.gui.window_driver import SAMPLES, make_window, open_file, run_steps, step_into

LAPTOP = QRect(0, 0, 1280, 800)
MONITOR = QRect(0, 0, 1600, 1000)
MIN_PLOT = (200, 120)  # px of plot area (inside the axes) a plot needs to be read


@pytest.fixture
def ini(tmp_path):
    return tmp_path / "settings.ini"


def settle(window: MainWindow) -> None:
    window.redraw(force=True)
    for _ in range(5):
        QApplication.processEvents()


def visible_plots(window: MainWindow) -> list[pg.PlotWidget]:
    return [w for w in window.page.findChildren(pg.PlotWidget) if w.isVisible()]


def plot_area(widget: pg.PlotWidget) -> tuple[float, float]:
    rect = widget.getPlotItem().getViewBox().sceneBoundingRect()
    return rect.width(), rect.height()


def inside(window: MainWindow, area: QRect) -> bool:
    return area.marginsRemoved(geometry.FRAME_ALLOWANCE).contains(window.geometry())


# --- size and place -----------------------------------------------------------------------------------


def test_clamp_moves_and_shrinks_into_the_available_area():
    area = QRect(0, 24, 1280, 776)  # a desktop panel takes the top 24 px
    clamped = geometry.clamp(QRect(-50, 0, 1600, 960), area, geometry.FRAME_ALLOWANCE)
    assert clamped == QRect(2, 54, 1276, 744)
    assert geometry.clamp(QRect(100, 100, 800, 600), area) == QRect(100, 100, 800, 600)  # already inside: kept


def test_saved_geometry_larger_than_the_screen_is_clamped(qtbot, ini):
    big = make_window(qtbot, ini)
    big.reset_layout(QRect(0, 0, 2560, 1440))
    assert big.width() > LAPTOP.width()
    saved = big.saveGeometry()
    big.close()
    small = MainWindow(settings=Settings(QSettings(str(ini), QSettings.Format.IniFormat)), remember_layout=False)
    qtbot.addWidget(small)
    geometry.place(small, saved, LAPTOP)
    assert inside(small, LAPTOP)  # (restoreGeometry itself also keeps to the real, smaller offscreen screen)


def test_window_opens_within_a_small_screen_with_room_to_spare(qtbot, ini):
    window = make_window(qtbot, ini)
    window.reset_layout(LAPTOP)
    qtbot.waitUntil(lambda: inside(window, LAPTOP))
    assert window.compact_layout
    hint = window.minimumSizeHint()
    assert hint.width() <= LAPTOP.width() and hint.height() <= LAPTOP.height() - 32  # the user can still resize it
    window.reset_layout(MONITOR)
    assert not window.compact_layout and inside(window, MONITOR) and window.width() == 1596


def test_geometry_comes_back_where_it_was_left(qtbot, ini):
    first = make_window(qtbot, ini)
    first.setGeometry(QRect(20, 40, 760, 700))
    qtbot.waitUntil(lambda: first.geometry() == QRect(20, 40, 760, 700))
    first.close()
    for _ in range(3):  # restart after restart: no creep
        window = make_window(qtbot, ini)
        assert window.geometry() == QRect(20, 40, 760, 700)
        window.close()


# --- readable at 1280x800 -----------------------------------------------------------------------------


def test_laptop_layout_keeps_every_plot_readable(qtbot, ini):
    window = make_window(qtbot, ini)
    window.reset_layout(LAPTOP)
    open_file(qtbot, window, SAMPLES["dying_relu"])
    run_steps(qtbot, window, 3)
    tabs = window.page.tabs
    seen = set()
    for index in range(tabs.count()):
        tabs.setCurrentIndex(index)
        settle(window)
        for widget in visible_plots(window):
            width, height = plot_area(widget)
            seen.add(id(widget))
            assert width >= MIN_PLOT[0] and height >= MIN_PLOT[1], (tabs.tabText(index), width, height)
            # laid out within its widget: nothing (the newest steps) cut off on the right
            assert widget.getPlotItem().size().width() <= widget.width()
    assert len(seen) >= 7  # histogram, two heatmaps, dead count, unit map, gradient bars and curves, loss
    assert {tabs.tabText(i) for i in range(tabs.count())} >= {"Gradient flow", "Loss"}
    tools = window.docks
    assert all(window.dockWidgetArea(d) == window.dockWidgetArea(tools.step_dock) for d in tools.docks)
    assert window.statusBar().geometry().bottom() < window.height()


def test_monitor_layout_plots_fit_and_the_gradient_chart_has_labelled_decades(qtbot, ini):
    window = make_window(qtbot, ini)
    window.reset_layout(MONITOR)
    open_file(qtbot, window, SAMPLES["vanishing_sigmoid"])
    run_steps(qtbot, window, 3)
    settle(window)
    for widget in visible_plots(window):
        assert widget.getPlotItem().size().width() <= widget.width()
    flow = window.page.gradient_flow_view
    _, height = plot_area(flow.flow_widget)
    assert height >= 96  # beside the other plots on a monitor: room for six decade labels (it was 30-40 px)
    axis = flow.flow.getAxis("left")
    low, high = flow.flow.getViewBox().viewRange()[1]
    labelled = [v for _spacing, values in axis.tickValues(low, high, height) for v in values]
    assert len(labelled) >= 3 and all(float(v).is_integer() for v in labelled)  # whole decades, 10^k


def test_step_dock_keeps_its_width_through_step_into(qtbot, ini):
    window = make_window(qtbot, ini)
    window.reset_layout(MONITOR)
    open_file(qtbot, window, SAMPLES["healthy_resnet"])
    run_steps(qtbot, window, 1)
    dock = window.docks.step_dock
    widths = set()
    for _ in range(14):  # forward through every layer, the loss, backward: long layer names and parameter lists
        step_into(qtbot, window)
        settle(window)
        widths.add(dock.width())
    assert len(widths) == 1


def test_view_menu_resets_the_layout_and_holds_the_panel_toggles(qtbot, ini):
    window = make_window(qtbot, ini)
    window.reset_layout(MONITOR)
    open_file(qtbot, window, SAMPLES["dying_relu"])
    tools = window.docks
    menus = {a.text(): a.menu() for a in window.menuBar().actions()}
    view = [a.text() for a in menus["&View"].actions()]
    assert "Reset &layout" in view and {d.windowTitle() for d in tools.docks} <= set(view)
    assert not any("Panels" in a.text() for a in menus["&Debug"].actions())
    tools.step_dock.setFloating(True)
    tools.network_dock.hide()
    window.actions_.reset_layout.trigger()
    assert not tools.step_dock.isFloating() and tools.network_dock.isVisible()
    assert inside(window, window.screen_area)


def test_every_symbol_the_window_writes_is_in_the_usual_linux_font(qapp):
    """A glyph missing from DejaVu Sans (Qt's usual fallback on Linux) renders as an empty box (it was '⏸')."""
    font = QFont("DejaVu Sans")
    if QFontInfo(font).family() != "DejaVu Sans":
        pytest.skip("DejaVu Sans is not installed")
    metrics = QFontMetrics(font)
    sources = Path(bpviz.gui.__file__).parent.rglob("*.py")
    used = {c for path in sources for c in path.read_text("utf-8") if ord(c) > 127}
    assert used and not sorted(c for c in used if not metrics.inFontUcs4(ord(c)))


def test_step_axes_label_whole_steps_only(qapp):
    from bpviz.gui import theme

    axis = theme.plot_widget(bottom="step").getPlotItem().getAxis("bottom")
    plain = pg.AxisItem("bottom")
    assert any(not float(v).is_integer() for _s, values in plain.tickValues(-0.5, 2.5, 400) for v in values)
    for low, high in ((-0.5, 2.5), (-0.4, 0.4), (0.0, 1000.0)):
        values = [v for _s, vs in axis.tickValues(low, high, 400) for v in vs]
        assert values and all(float(v).is_integer() for v in values), (low, high, values)
    assert axis.tickStrings([0.0, 1.0, 2.0], 1.0, 1.0) == ["0", "1", "2"]


def test_headers_put_a_non_finite_warning_first_where_a_narrow_pane_cannot_cut_it(qtbot):
    from bpviz.engine.record.history import History
    from bpviz.gui.plots.gradient_flow_view import GradientFlowView
    from bpviz.gui.plots.histogram_view import HistogramView
    from tests.gui.record_factory import layer, record, small_net

    layers = small_net(0)
    layers[2] = layer("fc2", 2, grad_norm=float("inf"), grad_nonfinite=True, nonfinite=True)
    history = History()
    history.append(record(0, layers))
    hist, flow = HistogramView(), GradientFlowView()
    for view in (hist, flow):
        qtbot.addWidget(view)
        view.set_layer("fc2")
        view.refresh(history)
    texts = [QTextDocumentFragment.fromHtml(v.header.text()).toPlainText().strip() for v in (hist, flow)]
    assert texts[0].startswith("NaN/Inf in output") and "fc2" in texts[0]
    assert texts[1].startswith("1 NaN/Inf") and "gradient norm per layer" in texts[1]


@pytest.mark.parametrize("area", [LAPTOP, MONITOR], ids=["1280x800", "1600x1000"])
def test_workbench_shows_its_table_and_continue_without_scrolling(qtbot, ini, area):
    window = make_window(qtbot, ini)
    window.reset_layout(area)
    open_file(qtbot, window, SAMPLES["dying_relu"])
    tools = window.docks
    tools.workbench_dock.raise_()
    run_steps(qtbot, window, 4)
    bench = tools.workbench
    qtbot.waitUntil(lambda: bench.table.rowCount() > 30)
    settle(window)
    viewport = tools.workbench_dock.widget().viewport()
    for control in (bench.go, bench.steps, bench.layer_box, bench.reinit):
        corner = control.mapTo(viewport, QPoint(0, control.height()))
        assert control.isVisible() and 0 <= corner.y() <= viewport.height(), control
    assert bench.table.viewport().height() // bench.table.rowHeight(0) >= 4  # rows a person can compare


def test_a_start_page_with_long_recent_lists_still_fits_a_laptop_screen(qtbot, ini, tmp_path):
    """Ten recent files and ten runs (a user after a week) once made the start page, and so the window, taller
    than an 800-pixel screen: the lists now shrink and scroll."""
    window = make_window(qtbot, ini)
    window.start_page.set_recent([tmp_path / f"experiment_{i}.py" for i in range(10)])
    window.start_page.set_runs([tmp_path / "runs" / f"2026-12-0{i % 9 + 1}_run{i}.bpviz" for i in range(10)])
    window.reset_layout(LAPTOP)
    settle(window)
    assert window.stack.currentWidget() is window.start_page
    assert window.minimumSizeHint().height() < LAPTOP.height() - 60  # room for the title bar and a panel
    assert inside(window, LAPTOP)
    runs = window.start_page.runs
    assert runs.isVisible() and runs.count() == 10 and runs.height() >= runs.minimumHeight() > 0


@pytest.mark.parametrize("area", [LAPTOP, MONITOR], ids=["1280x800", "1600x1000"])
def test_an_error_s_details_scroll_over_the_page_and_never_resize_the_window(qtbot, ini, tmp_path, area):
    """Details once laid a 140 px traceback above a page already at its least height: the window grew past the
    screen (1596x960 to 1596x1107), its status bar and Network dock off the bottom, and Dismiss kept the height."""
    from PySide6.QtCore import Qt

    from bpviz.engine.user_error import UserCodeError
    from bpviz.gui.window.error_panel import DETAILS_HEIGHT
    from tests.engine.run_files import seeded_run

    run = tmp_path / "a.bpviz"
    seeded_run(run, steps=3)
    window = make_window(qtbot, ini)
    window.reset_layout(area)
    assert window.open_path(run)
    qtbot.waitUntil(lambda: window.shown_step == 2)
    settle(window)
    size = window.size()
    traceback = "Traceback (most recent call last):\n" + "\n".join(f'  File "exits.py", line {i}' for i in range(60))
    panel = window.error_panel
    panel.show_error(
        UserCodeError("build() called sys.exit(3) at exits.py:6", "SystemExit: 3", "exits.py:6", details=traceback)
    )
    settle(window)
    assert window.size() == size and window.minimumSizeHint().height() <= size.height()
    qtbot.mouseClick(panel.details_button, Qt.MouseButton.LeftButton)
    settle(window)
    details = panel.details
    assert details.isVisible() and details.toPlainText() == traceback
    assert window.size() == size and window.minimumSizeHint().height() <= size.height()
    top_left = details.mapTo(window, QPoint(0, 0))
    assert top_left.y() >= panel.mapTo(window, QPoint(0, panel.height())).y()  # under the panel, over the page
    assert 0 < details.height() <= DETAILS_HEIGHT and top_left.y() + details.height() < window.statusBar().y()
    assert details.verticalScrollBar().maximum() > 0  # 60 lines scroll inside it
    qtbot.mouseClick(panel.dismiss_button, Qt.MouseButton.LeftButton)
    settle(window)
    assert not panel.isVisible() and not details.isVisible()
    assert window.size() == size and window.statusBar().isVisible()


def test_a_narrow_header_leaves_out_whole_parts_and_never_cuts_a_number(qtbot):
    """At 1600x1000 the gradient-flow header was clipped mid-number: fc1's 0.000704 read "fc1 0.0", relu2's 0.06065
    "relu2 0" and 5.9e-05 "fc1 5"."""
    from bpviz.engine.record.history import History
    from bpviz.gui.plots.gradient_flow_view import GradientFlowView
    from tests.gui.record_factory import layer, record

    history = History()
    norms = {"fc1": 0.000704, "relu1": 0.00093, "fc2": 0.0012, "relu2": 0.06065, "out": 0.11}
    history.append(record(4, [layer(name, i, grad_norm=norm) for i, (name, norm) in enumerate(norms.items())]))
    view = GradientFlowView()
    qtbot.addWidget(view)
    view.set_layer("fc1")
    view.refresh(history)
    view.show()
    header = view.header
    full = QTextDocumentFragment.fromHtml(header.full_text()).toPlainText()
    assert "fc1 0.000704" in full and full == header.toolTip()

    def shown_width() -> float:
        document = QTextDocument()
        document.setDocumentMargin(0)
        document.setDefaultFont(header.font())
        document.setHtml(header.text())
        return document.idealWidth()

    fitted = 0
    for width in range(160, 900, 20):
        view.resize(width, 400)
        qtbot.waitUntil(lambda width=width: view.width() == width)
        shown = QTextDocumentFragment.fromHtml(header.text()).toPlainText()
        assert shown_width() <= header.contentsRect().width(), (width, shown)  # nothing clipped at the edge
        kept = shown.removesuffix("…").rstrip()
        assert full.startswith(kept), (width, shown)  # whole parts, in order
        assert "fc1" not in kept or "fc1 0.000704" in kept, (width, shown)
        fitted += shown != full
    assert 0 < fitted < len(range(160, 900, 20))  # narrow: parts left out; wide enough: the whole header


def test_a_long_status_message_ends_in_an_ellipsis_before_the_step_and_keeps_its_whole_text(qtbot, ini):
    window = make_window(qtbot, ini)
    window.reset_layout(LAPTOP)
    open_file(qtbot, window, SAMPLES["dying_relu"])
    run_steps(qtbot, window, 1)
    bar = window.statusBar()
    path = "/home/someone/.local/share/bpviz/runs/" + "a-long-experiment-name-" * 8 + "2026-12-03.bpviz"
    bar.showMessage(f"Opened the recording {path} (120 steps).")
    settle(window)
    step = window.status.labels["step"]
    shown = bar.shown_message()
    assert shown.endswith("…") and shown[:-1] in bar.currentMessage()
    assert bar.currentMessage().endswith("(120 steps).")  # what the window reads back is the whole message
    assert 6 + bar.fontMetrics().horizontalAdvance(shown) <= step.x()  # drawn clear of "Step 0"
    bar.showMessage("Saved layers.csv")
    assert bar.shown_message() == "Saved layers.csv"  # a short one is drawn as it is


def test_the_heatmaps_note_of_values_outside_its_bins_wraps_to_the_plot_width(qtbot, ini):
    window = make_window(qtbot, ini)
    window.reset_layout(MONITOR)
    open_file(qtbot, window, SAMPLES["dying_relu"])
    run_steps(qtbot, window, 3)
    window.page.select_layer("fc2")  # relu2's dead units pass it no gradient: most of it is exactly zero
    settle(window)
    heatmap = window.page.histogram_view.gradient_map
    note, view = heatmap.note, heatmap.plot.getViewBox()
    assert "zero or below 1e-12" in note.toPlainText()
    window.page.histogram_view.resize(300, 400)  # the heatmap narrower than its note's one line
    settle(window)
    assert view.width() < QFontMetrics(note.textItem.font()).horizontalAdvance(note.toPlainText())
    assert note.textItem.boundingRect().width() <= view.width() - 8 + 0.5
    assert note.textItem.boundingRect().height() > QFontMetrics(note.textItem.font()).height() * 1.5  # two lines


def test_the_findings_columns_fit_their_cells_and_leave_the_rest_to_the_message(qtbot, ini):
    window = make_window(qtbot, ini)
    window.reset_layout(LAPTOP)
    open_file(qtbot, window, SAMPLES["dying_relu"])
    panel = window.page.findings_panel
    # before any finding: the pane says what it will hold, on as many lines as it needs
    assert panel.explanation.toPlainText().startswith("Findings appear here as the model trains")
    run_steps(qtbot, window, 3)
    assert [f.kind for f in window.findings] == ["dead_relu"]
    view, header = panel.view, panel.view.horizontalHeader()
    for col in range(4):  # Severity, Kind, Layer, Step: their widest cell or header, no wider
        assert header.sectionSize(col) == max(header.sectionSizeHint(col), view.sizeHintForColumn(col))
    message = header.sectionPosition(4)
    assert message < view.viewport().width()  # the message column starts inside the visible table
