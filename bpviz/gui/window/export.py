"""Saving a view (or one plot of it) as PNG or SVG.

SVG is drawn with Qt's own QSvgGenerator: pyqtgraph's SVGExporter breaks with
recent Qt versions (pyqtgraph issue #3485).
"""
from __future__ import annotations

from pathlib import Path

import pyqtgraph as pg
import pyqtgraph.exporters
from PySide6 import QtCore, QtGui, QtSvg, QtWidgets

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
    generator = QtSvg.QSvgGenerator()
    generator.setFileName(str(path))
    generator.setSize(size)
    generator.setViewBox(QtCore.QRect(QtCore.QPoint(0, 0), size))
    generator.setTitle(title)
    painter = QtGui.QPainter()
    if not painter.begin(generator):
        raise OSError(f"could not write the SVG file {path}: check the folder exists and is writable")
    try:
        if isinstance(target, QtWidgets.QGraphicsItem):
            target.scene().render(painter, QtCore.QRectF(0, 0, size.width(), size.height()), source)
        else:
            # QWidget.render, not QGraphicsView.render (a PlotWidget's own render draws only the scene)
            QtWidgets.QWidget.render(target, painter, QtCore.QPoint(0, 0))
    finally:
        painter.end()
    _check_written(path)
    return path


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
