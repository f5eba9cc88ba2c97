"""Saving a view (or one plot of it) as PNG or SVG; Export plots writes each as a titled figure of a fixed size.

SVG is drawn with Qt's own QSvgGenerator: pyqtgraph's SVGExporter breaks with
recent Qt versions (pyqtgraph issue #3485).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import pyqtgraph as pg
import pyqtgraph.exporters
from PySide6 import QtCore, QtGui, QtSvg, QtWidgets

from bpviz.gui import theme

Exportable = QtWidgets.QWidget | QtWidgets.QGraphicsItem


def export_png(target: Exportable, path: str | Path) -> Path:
    """Write `target` (a widget, or a PlotItem inside a scene) to a PNG file at `path`."""
    path = Path(path)
    if isinstance(target, QtWidgets.QGraphicsItem):
        exporter = pg.exporters.ImageExporter(target)
        exporter.export(str(path))
    else:
        _prepare(target)
        if not target.grab().save(str(path), "PNG"):
            raise OSError(f"could not write the PNG image {path}: check the folder exists and is writable")
    _check_written(path)
    return path


def export_svg(target: Exportable, path: str | Path, title: str = "bpviz") -> Path:
    """Write `target` (a widget, or a PlotItem inside a scene) to an SVG file at `path`, as vector graphics."""
    path = Path(path)
    if isinstance(target, QtWidgets.QGraphicsItem):
        source = target.sceneBoundingRect()
        size = source.size().toSize()
    else:
        _prepare(target)
        size = target.size()
    with _svg_painter(path, size, title) as painter:
        if isinstance(target, QtWidgets.QGraphicsItem):
            target.scene().render(painter, QtCore.QRectF(0, 0, size.width(), size.height()), source)
        else:
            # QWidget.render, not QGraphicsView.render (a PlotWidget's own render draws only the scene)
            QtWidgets.QWidget.render(target, painter, QtCore.QPoint(0, 0))
    _check_written(path)
    return path


@contextlib.contextmanager
def _svg_painter(path: Path, size: QtCore.QSize, title: str) -> Iterator[QtGui.QPainter]:
    """A painter drawing into the SVG file `path` of `size`, ended (and the file written) on leaving."""
    generator = QtSvg.QSvgGenerator()
    generator.setFileName(str(path))
    generator.setSize(size)
    generator.setViewBox(QtCore.QRect(QtCore.QPoint(0, 0), size))
    generator.setTitle(title)
    painter = QtGui.QPainter()
    if not painter.begin(generator):
        raise OSError(f"could not write the SVG file {path}: check the folder exists and is writable")
    try:
        yield painter
    finally:
        painter.end()


def _prepare(widget: QtWidgets.QWidget) -> None:
    """Lay out a widget that was never shown, so it renders at a sensible size."""
    widget.ensurePolished()
    if not widget.isVisible() and (widget.width() < 50 or widget.height() < 50):
        widget.resize(widget.sizeHint().expandedTo(QtCore.QSize(640, 400)))
    layout = widget.layout()
    if layout is not None:
        layout.activate()


def _check_written(path: Path) -> None:
    if not path.is_file() or path.stat().st_size == 0:
        raise OSError(f"exporting to {path} wrote nothing: check the folder exists and is writable")


EXPORT_WIDTH = 1200  # px: a figure's width, whatever size the plot has on screen
ASPECT = (0.4, 0.75)  # a figure's height as a share of its width: the plot's own shape, within these bounds
TITLE_HEIGHT = 44


def figure_stem(*parts: str | int | None) -> str:
    """A file name stem without spaces or odd characters: 'gradient_flow_relu2_step9'."""
    words = [re.sub(r"[^A-Za-z0-9.-]+", "_", str(part)).strip("_") for part in parts if part not in (None, "")]
    return "_".join(word for word in words if word)


def export_figure(widget: QtWidgets.QWidget, stem: Path, title: str, width: int = EXPORT_WIDTH) -> list[Path]:
    """`widget` laid out at `width` px (not its on-screen size) under a `title` band, as `stem`.png and `stem`.svg."""
    _prepare(widget)
    shown = widget.size()
    share = min(max(shown.height() / max(shown.width(), 1), ASPECT[0]), ASPECT[1])
    size = QtCore.QSize(width, int(width * share))
    full = QtCore.QSize(size.width(), size.height() + TITLE_HEIGHT)
    png, svg = stem.with_suffix(".png"), stem.with_suffix(".svg")
    _lay_out(widget, size)
    try:
        image = QtGui.QImage(full, QtGui.QImage.Format.Format_ARGB32)
        image.fill(QtGui.QColor(theme.BACKGROUND))
        painter = QtGui.QPainter(image)
        _paint_figure(painter, widget, title, full)
        painter.end()
        if not image.save(str(png), "PNG"):
            raise OSError(f"could not write the PNG image {png}: check the folder exists and is writable")
        with _svg_painter(svg, full, title) as painter:
            painter.fillRect(QtCore.QRect(QtCore.QPoint(0, 0), full), QtGui.QColor(theme.BACKGROUND))
            _paint_figure(painter, widget, title, full)
    finally:
        _lay_out(widget, shown)
    for path in (png, svg):
        _check_written(path)
    return [png, svg]


def _lay_out(widget: QtWidgets.QWidget, size: QtCore.QSize) -> None:
    """Resize `widget` and lay its plots out now, so what is painted next is laid out for `size`."""
    widget.resize(size)
    layout = widget.layout()
    if layout is not None:
        layout.activate()
    views = [widget] if isinstance(widget, pg.PlotWidget) else widget.findChildren(pg.PlotWidget)
    for view in views:
        # a hidden widget (a plot in another tab) gets its resize event only when shown: fit the plot to it now
        view.resizeEvent(QtGui.QResizeEvent(view.size(), view.size()))
        view.getPlotItem().layout.activate()


def _paint_figure(painter: QtGui.QPainter, widget: QtWidgets.QWidget, title: str, full: QtCore.QSize) -> None:
    font = QtGui.QFont()
    font.setPointSize(13)
    font.setBold(True)
    painter.setFont(font)
    painter.setPen(QtGui.QColor(theme.FOREGROUND))
    painter.drawText(
        QtCore.QRect(16, 0, full.width() - 32, TITLE_HEIGHT),
        QtCore.Qt.AlignmentFlag.AlignVCenter | QtCore.Qt.AlignmentFlag.AlignLeft,
        title,
    )
    if isinstance(widget, pg.GraphicsView):  # the scene at 1:1: a hidden view's viewport keeps its old size
        plot = widget.centralWidget
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        widget.scene().render(
            painter,
            QtCore.QRectF(0, TITLE_HEIGHT, full.width(), full.height() - TITLE_HEIGHT),
            plot.sceneBoundingRect(),
        )
    else:  # QWidget.render, not QGraphicsView.render (a PlotWidget's own render draws only the scene)
        QtWidgets.QWidget.render(widget, painter, QtCore.QPoint(0, TITLE_HEIGHT))
