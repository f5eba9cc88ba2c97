"""Colours, pens and plot styling shared by every view, so the plots read as one instrument.

A dark scheme: activations are blue, gradients amber, the selected layer white,
anything broken (non-finite, dead) red. Change a colour here, never in a view.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6 import QtCore, QtGui

from bpviz.gui.fitted_header import FittedHeader
from bpviz.gui.plots import fitted_title
from bpviz.gui.plots.step_axis import StepAxis

BACKGROUND = "#1b1d23"
PANEL = "#23262e"
FOREGROUND = "#c9ced8"
MUTED = "#7d8494"
GRID_ALPHA = 0.18

ACTIVATION = "#4fb3ff"
GRADIENT = "#ffab40"
SELECTED = "#ffffff"
HIGHLIGHT = "#ffd54f"
BAD = "#ff5252"
LOSS = "#7ee08a"
VALIDATION = "#ff7ad9"
METRIC = "#b388ff"  # validation metrics other than a loss (accuracy), on their own axis
ZERO_GRADIENT = "#4dd0e1"  # a gradient of exactly zero: a symptom, so it gets a colour of its own
COMPARED = "#ff8a65"  # the second run of File > Compare With..., drawn over the first
NO_DATA = "#2c3039"  # not measured: the background's shade, never a value colour
SEVERITY_COLOURS = {"error": "#d32f2f", "warning": "#f0a500", "info": "#1e88e5"}
UNKNOWN_SEVERITY = "#444444"
INACTIVE = "#8a8a8a"  # a finding no longer active
DEAD = "#c62828"  # the layer table's dead-unit count
INTERVENTION, UNDONE = "#b388ff", "#8d93a3"  # a remedy's mark on the time axes, and an undo's

# window chrome: status bar, start page, boxes around plots
STATUS_TEXT = "#b9bfca"
SUBTITLE = "#9aa0aa"
HINT = "#8a909b"
FRAME = "#343845"
ERROR_PANEL_STYLE = (
    "#errorPanel { background: #fdecea; border: 1px solid #e0a19b; border-radius: 4px; }"
    "#errorPanel QLabel { color: #611a15; }"
)
LOADING_PANEL_STYLE = (
    "#loadingPanel { background: #1f3350; border: 1px solid #3d6ea8; border-radius: 4px; }"
    "#loadingPanel QLabel { color: #dce9fb; }"
)
ERROR_DETAILS_STYLE = "#errorDetails { border: 1px solid #e0a19b; border-top: none; }"  # the panel's traceback
BREAKPOINT_HIT_STYLE = (
    "QLabel { background: #5a1f1f; color: #ffd6d6; border: 1px solid #c24040; border-radius: 3px;"
    " padding: 6px 8px; font-weight: 600; }"
)
WARNING_BANNER_STYLE = (
    "QLabel { background: #5c4100; color: #ffe8a3; border: 1px solid #a87a00; border-radius: 3px;"
    " padding: 5px 8px; font-weight: 600; }"
)

PHASE_COLOURS = {"forward": ACTIVATION, "backward": GRADIENT}  # a paused step's wavefront

# the network view: its nodes, frames, edges, and the colour scales of its metrics
NODE_BORDER = "#3b4150"
BLOCK_FILL = "#2a2e38"
EDGE = "#4a5163"
INK_ON_LIGHT, SOFT_INK_ON_LIGHT = "#101216", "#2a2e36"
INK_ON_DARK, SOFT_INK_ON_DARK = "#eef1f6", "#aab1bf"
SCALES = {
    "bad": ("#24524a", "#3f7f5c", "#c9a227", "#e0533f"),  # share of something wrong: calm to alarming
    "gradient": ("#2a1b4a", "#6a2c8f", "#c1447a", "#f98e52", "#fcfdbf"),
    "update": ("#1d3557", "#2a9d8f", "#e9c46a", "#e76f51"),
}

ACTIVATION_COLORMAP = "viridis"
GRADIENT_COLORMAP = "inferno"
ACTIVITY_COLORMAP = "magma"
DEPTH_COLORMAP = "plasma"  # colours layers by depth, input to output

FONT_POINT_SIZE = 9
AXIS_WIDTH = 62  # fixed left-axis width so stacked plots line their x axes up
PLOT_MIN_HEIGHT = 120  # px: a plot lower than this shows too little to read


def color(name: str, alpha: float = 1.0) -> QtGui.QColor:
    """A theme colour with the given opacity."""
    c = QtGui.QColor(name)
    c.setAlphaF(alpha)
    return c


def pen(name: str, width: float = 1.5, alpha: float = 1.0) -> QtGui.QPen:
    """A cosmetic pen in a theme colour."""
    p = pg.mkPen(color(name, alpha), width=width)
    p.setCosmetic(True)
    return p


def brush(name: str, alpha: float = 1.0) -> QtGui.QBrush:
    """A brush in a theme colour."""
    return pg.mkBrush(color(name, alpha))


def colormap(name: str) -> pg.ColorMap:
    """One of pyqtgraph's bundled colour maps."""
    return pg.colormap.get(name)


def depth_colors(n: int) -> list[QtGui.QColor]:
    """n colours from input (dark) to output (bright), for curves that stand for layers."""
    if n <= 0:
        return []
    cmap = colormap(DEPTH_COLORMAP)
    return [cmap.map(0.15 + 0.8 * (i / max(n - 1, 1)), mode="qcolor") for i in range(n)]


def tick_font() -> QtGui.QFont:
    """The font of axis tick labels."""
    font = QtGui.QFont()
    font.setPointSize(FONT_POINT_SIZE)
    return font


def plot_widget(
    title: str | None = None,
    left: str | None = None,
    bottom: str | None = None,
    axis_items: dict | None = None,
    grid: bool = True,
) -> pg.PlotWidget:
    """A themed PlotWidget: background, axis pens, grid, fixed left-axis width, no context-menu clutter."""
    if bottom == "step" and "bottom" not in (axis_items or {}):
        axis_items = {**(axis_items or {}), "bottom": StepAxis()}  # whole steps only, never 0.5
    widget = pg.PlotWidget(background=BACKGROUND, axisItems=axis_items)
    widget.setMinimumHeight(PLOT_MIN_HEIGHT)
    style_plot(widget.getPlotItem(), title=title, left=left, bottom=bottom, grid=grid)
    return widget


def style_plot(
    plot: pg.PlotItem, title: str | None = None, left: str | None = None, bottom: str | None = None, grid: bool = True
) -> None:
    """Apply the theme to a PlotItem's axes, labels and grid.

    The grid is horizontal only and at major ticks only: grid lines are replayed on every
    update of the plot, and a log axis with all its minor ticks costs over 10 ms a frame in software.
    """
    for side in ("left", "bottom"):
        style_axis(plot.getAxis(side))
    plot.getAxis("left").setWidth(AXIS_WIDTH)
    plot.getAxis("left").setStyle(maxTickLevel=0)  # major ticks only: a log axis would draw a line per minor tick
    plot.showGrid(x=False, y=grid, alpha=GRID_ALPHA)
    plot.setMenuEnabled(False)
    plot.hideButtons()
    label_style = {"color": FOREGROUND, "font-size": f"{FONT_POINT_SIZE}pt"}
    if left:
        plot.setLabel("left", left, **label_style)
    if bottom:
        plot.setLabel("bottom", bottom, **label_style)
    if title:
        set_title(plot, title)


def set_title(plot: pg.PlotItem, title: str, colour: str = FOREGROUND, size: str = f"{FONT_POINT_SIZE + 1}pt") -> None:
    """Title a plot with a title that elides when narrow (pyqtgraph's own would widen the plot past its pane)."""
    if not isinstance(plot.titleLabel, fitted_title.FittedTitle):
        fitted_title.install(plot)
    plot.setTitle(title, color=colour, size=size)


def style_axis(axis: pg.AxisItem) -> None:
    """Theme one axis: pens, tick font, no SI prefix.

    A prefixed label ("step (x1e-06)", or "(x0.001)" on a log axis) reads as a wrong unit.
    """
    axis.setPen(pen(MUTED, width=1))
    axis.setTextPen(pen(FOREGROUND, width=1))
    axis.setTickFont(tick_font())
    axis.enableAutoSIPrefix(False)


LABEL_STYLE = (
    f"QLabel {{ color: {FOREGROUND}; background: {PANEL}; padding: 4px 8px; font-size: {FONT_POINT_SIZE + 1}pt; }}"
)
# every widget inside a view; a disabled one muted, as the palette has it elsewhere: a bare colour here held in
# every state, so a disabled Undo or spin box read as bright as an enabled one
VIEW_STYLE = f"* {{ background: {BACKGROUND}; color: {FOREGROUND}; }} *:disabled {{ color: {MUTED}; }}"


def rich(text: str, colour: str = FOREGROUND, bold: bool = False) -> str:
    """A span of HTML for a QLabel in a theme colour."""
    weight = "font-weight:600;" if bold else ""
    return f'<span style="color:{colour};{weight}">{text}</span>'


def badge(text: str, colour: str = BAD) -> str:
    """A warning as a coloured badge, for the start of a header: the end of a header is what narrow panes cut off."""
    return f'<span style="background:{colour};color:{BACKGROUND};font-weight:700;">&nbsp;{text}&nbsp;</span>&nbsp; '


def header_label() -> FittedHeader:
    """A view's one-line header: as many of its parts as fit whole, never a number cut short."""
    label = FittedHeader()
    label.setStyleSheet(LABEL_STYLE)
    return label


def dot_icon(colour: str) -> QtGui.QIcon:
    """A small filled circle: the severity mark of tables and lists."""
    pixmap = QtGui.QPixmap(12, 12)
    pixmap.fill(QtCore.Qt.GlobalColor.transparent)
    painter = QtGui.QPainter(pixmap)
    painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
    painter.setBrush(QtGui.QColor(colour))
    painter.setPen(QtCore.Qt.PenStyle.NoPen)
    painter.drawEllipse(1, 1, 10, 10)
    painter.end()
    return QtGui.QIcon(pixmap)


DISABLED_ICON_OPACITY = 0.3
ICON_SIZES = (16, 20, 24, 32)  # menus, toolbars and high-DPI toolbars


def muted_when_disabled(icon: QtGui.QIcon) -> QtGui.QIcon:
    """`icon`, with its disabled look drawn faint: the style's own disabled icons are greyed, not dimmed, and on a
    dark palette a grey checkmark reads as an enabled button (Validate and Reset looked ready when they were not)."""
    muted = QtGui.QIcon()
    for size in ICON_SIZES:
        normal = icon.pixmap(size, size)
        muted.addPixmap(normal, QtGui.QIcon.Mode.Normal)
        faint = QtGui.QPixmap(normal.size())
        faint.setDevicePixelRatio(normal.devicePixelRatio())
        faint.fill(QtCore.Qt.GlobalColor.transparent)
        painter = QtGui.QPainter(faint)
        painter.setOpacity(DISABLED_ICON_OPACITY)
        painter.drawPixmap(0, 0, normal)
        painter.end()
        muted.addPixmap(faint, QtGui.QIcon.Mode.Disabled)
    return muted


def dark_palette() -> QtGui.QPalette:
    """A dark palette that matches the plots' background, so the window reads as one instrument."""
    p = QtGui.QPalette()
    window, base, alt, text, muted = (
        QtGui.QColor("#262930"),
        QtGui.QColor("#1e2026"),
        QtGui.QColor("#23262d"),
        QtGui.QColor("#d7dbe3"),
        QtGui.QColor("#7d8494"),
    )
    highlight = QtGui.QColor("#2f6db5")
    roles = QtGui.QPalette.ColorRole
    for role, colour in (
        (roles.Window, window),
        (roles.WindowText, text),
        (roles.Base, base),
        (roles.AlternateBase, alt),
        (roles.ToolTipBase, QtGui.QColor("#30343c")),
        (roles.ToolTipText, text),
        (roles.Text, text),
        (roles.Button, QtGui.QColor("#2e323a")),
        (roles.ButtonText, text),
        (roles.BrightText, QtGui.QColor("#ff6b6b")),
        (roles.Highlight, highlight),
        (roles.HighlightedText, QtGui.QColor("#ffffff")),
        (roles.Link, QtGui.QColor("#6cb2ff")),
        (roles.PlaceholderText, muted),
        (roles.Mid, QtGui.QColor("#3a3e47")),
        (roles.Dark, QtGui.QColor("#181a1f")),
        (roles.Light, QtGui.QColor("#3c414b")),
        (roles.Midlight, QtGui.QColor("#343841")),
        (roles.Shadow, QtGui.QColor("#0d0e11")),
    ):
        p.setColor(role, colour)
    disabled = QtGui.QPalette.ColorGroup.Disabled
    for role in (roles.WindowText, roles.Text, roles.ButtonText):
        p.setColor(disabled, role, muted)
    return p
