"""Where the panels go: side by side on a roomy screen, tabbed on a small one, and back to either on Reset layout.

At 1280x800 the roomy arrangement (docks below and to the right, four plots side
by side) leaves each plot a sliver. The compact one keeps every plot readable:
the docks share one tabbed column on the right, and the gradient flow and the
loss become tabs next to the activations, each with the whole plot area.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QMainWindow, QTabWidget

# Typed as QMainWindow, not MainWindow: the main window imports this module, and must be the only one of the two
# that imports the other. `window` is the main window (its page and debug tools).

ROOMY = QSize(1500, 940)  # the least available screen area for the side-by-side arrangement
TABLE_WIDTH = {False: 380, True: 290}  # px of the layer table, roomy / compact
DOCK_WIDTH = {False: 340, True: 400}  # px of the right dock column (Step, Breakpoints…), roomy / compact
DOCK_HEIGHT = 270  # px of the bottom dock row (Network, Workbench) in the roomy arrangement
SIDE_TABS = ("Gradient flow", "Loss")


def is_compact(available: QSize) -> bool:
    """Whether a screen area this size needs the compact arrangement."""
    return available.width() < ROOMY.width() or available.height() < ROOMY.height()


def arrange(window: QMainWindow, compact: bool) -> None:
    """Put the plots and the docks where `compact` says, at their default sizes."""
    _arrange_plots(window, compact)
    _arrange_docks(window, compact)
    window.compact_layout = compact


def _arrange_plots(window: QMainWindow, compact: bool) -> None:
    page = window.page
    side = [page.gradient_flow_view, page.loss_view]
    if compact:
        for view, title in zip(side, SIDE_TABS):
            if page.tabs.indexOf(view) < 0:
                page.tabs.addTab(view, title)
        page.side_splitter.hide()
    else:
        for i, view in enumerate(side):
            if page.tabs.indexOf(view) >= 0:
                page.tabs.removeTab(page.tabs.indexOf(view))
            page.side_splitter.insertWidget(i, view)
            view.show()
        page.side_splitter.show()
        page.side_splitter.setSizes([350, 170])
        page.views_splitter.setSizes([560, 520])
    page.tabs.setCurrentIndex(0)
    page.main_splitter.setSizes([TABLE_WIDTH[compact], 1000])
    page.right_splitter.setSizes([640, 200] if compact else [660, 140])


def _arrange_docks(window: QMainWindow, compact: bool) -> None:
    tools = window.docks
    right, bottom = Qt.DockWidgetArea.RightDockWidgetArea, Qt.DockWidgetArea.BottomDockWidgetArea
    for dock in tools.docks:
        dock.setFloating(False)
    # compact: five tabs in one narrow column; along its side each tab keeps its whole title, as in an IDE's side bar
    window.setTabPosition(right, QTabWidget.TabPosition.East if compact else QTabWidget.TabPosition.North)
    if compact:
        order = [
            tools.network_dock,
            tools.step_dock,
            tools.workbench_dock,
            tools.breakpoints_dock,
            tools.hyperparams_dock,
        ]
        for dock in order:
            window.addDockWidget(right, dock)
        for dock in order[1:]:
            window.tabifyDockWidget(order[0], dock)
        tools.network_dock.raise_()
        window.resizeDocks([tools.network_dock], [DOCK_WIDTH[True]], Qt.Orientation.Horizontal)
        return
    window.addDockWidget(bottom, tools.network_dock)
    window.addDockWidget(bottom, tools.workbench_dock)
    window.tabifyDockWidget(tools.network_dock, tools.workbench_dock)
    window.addDockWidget(right, tools.step_dock)
    window.addDockWidget(right, tools.breakpoints_dock)
    window.addDockWidget(right, tools.hyperparams_dock)
    window.tabifyDockWidget(tools.breakpoints_dock, tools.hyperparams_dock)
    tools.network_dock.raise_()
    tools.breakpoints_dock.raise_()
    window.resizeDocks([tools.step_dock, tools.breakpoints_dock], [330, 230], Qt.Orientation.Vertical)
    window.resizeDocks([tools.step_dock], [DOCK_WIDTH[False]], Qt.Orientation.Horizontal)
    window.resizeDocks([tools.network_dock], [DOCK_HEIGHT], Qt.Orientation.Vertical)
