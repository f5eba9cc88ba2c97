"""The model as a graph of its layers, each node coloured by a chosen metric, with the step's wavefront.

Layers flow left to right in execution order, wrapping into rows; layers
of one module block (`layer1.0.*`) sit in a frame that collapses into a
single node when clicked, so a few hundred layers stay readable. The scene
is built once per graph (or per collapse and resize); a new step only
recolours nodes, and a pause only re-marks them.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from bpviz.engine.record.history import History
from bpviz.engine.record.records import LayerStep
from bpviz.engine.session.step_gate import PhaseEvent
from bpviz.gui import theme

NODE_W, NODE_H = 112, 48
H_GAP, ROW_GAP = 30, 34
PAD, HEADER = 10, 22
COLLAPSE_ABOVE = 60  # more layers than this: blocks start collapsed
BLOCK_DEPTH = 2  # blocks group layers by at most this many leading module names ("layer1.0")
EDGE = "#4a5163"
PHASE_COLOURS = {"forward": theme.ACTIVATION, "backward": theme.GRADIENT}
NO_DATA = "#2c3039"


@dataclass(frozen=True)
class Metric:
    """What a node's colour means: a value per layer, its range, and how a collapsed block sums its layers up."""

    label: str
    value: Callable[[LayerStep], float | None]
    fixed: tuple[float, float] | None  # colour range; None: from the values shown
    worst: Callable  # max or min: a block shows its worst layer
    colours: tuple[str, ...]
    fmt: str


def _dead(layer: LayerStep) -> float | None:
    return 100.0 * layer.dead_units / layer.units if layer.units and layer.dead_units is not None else None


def _saturation(layer: LayerStep) -> float | None:
    return None if layer.saturated_fraction is None else 100.0 * layer.saturated_fraction


def _log(value: float | None) -> float | None:
    return math.log10(value) if value is not None and value > 0 and math.isfinite(value) else None


BAD_SCALE = ("#24524a", "#3f7f5c", "#c9a227", "#e0533f")
METRICS = {
    "dead": Metric("dead units %", _dead, (0.0, 100.0), max, BAD_SCALE, "{:.0f}% dead"),
    "grad": Metric("gradient norm (log10)", lambda l: _log(l.grad_norm), None, min,
                   ("#2a1b4a", "#6a2c8f", "#c1447a", "#f98e52", "#fcfdbf"), "‖g‖ 1e{:.1f}"),
    "saturation": Metric("saturation %", _saturation, (0.0, 100.0), max, BAD_SCALE, "{:.0f}% saturated"),
    "update": Metric("update ratio ‖ΔW‖/‖W‖ (log10)", lambda l: _log(l.update_ratio), (-5.0, -1.0), max,
                     ("#1d3557", "#2a9d8f", "#e9c46a", "#e76f51"), "ΔW/W 1e{:.1f}"),
}


def block_of(name: str) -> tuple[str, ...]:
    """The module block a layer belongs to: its containing modules, at most BLOCK_DEPTH deep (() for top level)."""
    return tuple(name.split(".")[:-1])[:BLOCK_DEPTH]


@dataclass
class Block:
    key: tuple[str, ...]
    members: list[str]
    expanded: bool = True

    @property
    def label(self) -> str:
        return ".".join(self.key)


def group(names: list[str]) -> list[str | Block]:
    """Layers in execution order, runs of two or more layers of the same block gathered into a Block."""
    items: list[str | Block] = []
    for name in names:
        key = block_of(name)
        last = items[-1] if items else None
        if key and isinstance(last, Block) and last.key == key:
            last.members.append(name)
        elif key and isinstance(last, str) and block_of(last) == key:
            items[-1] = Block(key, [last, name])
        else:
            items.append(name)
    return items


class NodeItem(QtWidgets.QGraphicsItem):
    """One layer, or one collapsed block; painted by hand so marking it is a cheap `update()`."""

    def __init__(self, view: NetworkView, key: str, title: str, subtitle: str, block: Block | None = None) -> None:
        super().__init__()
        self.view, self.key, self.title, self.subtitle, self.block = view, key, title, subtitle, block
        self.fill = QtGui.QColor(NO_DATA)
        self.value_text = ""
        self.selected = False
        self.visited: str | None = None  # phase colour key when visited in the current phase
        self.current = False
        self.setAcceptHoverEvents(True)
        self.setCursor(QtCore.Qt.CursorShape.PointingHandCursor)

    def boundingRect(self) -> QtCore.QRectF:
        return QtCore.QRectF(-6, -6, NODE_W + 12, NODE_H + 12)

    def paint(self, painter: QtGui.QPainter, _option, _widget=None) -> None:
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        rect = QtCore.QRectF(0, 0, NODE_W, NODE_H)
        if self.current:
            glow = theme.color(theme.HIGHLIGHT, 0.35)
            painter.setPen(QtGui.QPen(glow, 8))
            painter.setBrush(QtCore.Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(rect.adjusted(-1, -1, 1, 1), 8, 8)
        border, width = QtGui.QColor("#3b4150"), 1.0
        if self.visited:
            border, width = QtGui.QColor(PHASE_COLOURS[self.visited]), 2.5
        if self.selected:
            border, width = QtGui.QColor(theme.SELECTED), 2.5
        if self.current:
            border, width = QtGui.QColor(theme.HIGHLIGHT), 3.5
        painter.setPen(QtGui.QPen(border, width))
        painter.setBrush(self.fill)
        if self.block is not None:  # a stack of cards: a collapsed block
            painter.drawRoundedRect(rect.translated(4, -4), 6, 6)
        painter.drawRoundedRect(rect, 6, 6)
        if self.visited:
            painter.setPen(QtCore.Qt.PenStyle.NoPen)
            painter.setBrush(theme.color(PHASE_COLOURS[self.visited], 0.9))
            painter.drawRoundedRect(QtCore.QRectF(3, NODE_H - 6, NODE_W - 6, 3.5), 1.5, 1.5)
        light = self.fill.lightnessF() > 0.55
        ink = QtGui.QColor("#101216" if light else "#eef1f6")
        soft = QtGui.QColor("#2a2e36" if light else "#aab1bf")
        font = QtGui.QFont()
        font.setPointSizeF(8.5)
        font.setBold(True)
        painter.setFont(font)
        painter.setPen(ink)
        metrics = QtGui.QFontMetrics(font)
        title = metrics.elidedText(self.title, QtCore.Qt.TextElideMode.ElideMiddle, NODE_W - 10)
        painter.drawText(QtCore.QRectF(5, 3, NODE_W - 10, 16), QtCore.Qt.AlignmentFlag.AlignLeft, title)
        font.setBold(False)
        font.setPointSizeF(7.5)
        painter.setFont(font)
        painter.setPen(soft)
        small = QtGui.QFontMetrics(font)
        painter.drawText(QtCore.QRectF(5, 18, NODE_W - 10, 13), QtCore.Qt.AlignmentFlag.AlignLeft,
                         small.elidedText(self.subtitle, QtCore.Qt.TextElideMode.ElideRight, NODE_W - 10))
        painter.setPen(ink)
        painter.drawText(QtCore.QRectF(5, 30, NODE_W - 10, 13), QtCore.Qt.AlignmentFlag.AlignLeft,
                         small.elidedText(self.value_text, QtCore.Qt.TextElideMode.ElideRight, NODE_W - 10))

    def mousePressEvent(self, event) -> None:
        if event.button() == QtCore.Qt.MouseButton.LeftButton:
            self.view.node_clicked(self)
        event.accept()


class BlockFrame(QtWidgets.QGraphicsRectItem):
    """The frame around an expanded block; its header collapses it."""

    def __init__(self, view: NetworkView, block: Block, rect: QtCore.QRectF) -> None:
        super().__init__(rect)
        self.view, self.block = view, block
        self.setPen(QtGui.QPen(QtGui.QColor("#3b4150"), 1, QtCore.Qt.PenStyle.DashLine))
        self.setBrush(theme.color("#2a2e38", 0.55))
        self.setZValue(-2)
        header = QtWidgets.QGraphicsSimpleTextItem(f"▾ {block.label}  ({len(block.members)} layers)", self)
        header.setBrush(QtGui.QColor(theme.MUTED))
        header.setPos(rect.x() + 6, rect.y() + 4)
        self.setCursor(QtCore.Qt.CursorShape.PointingHandCursor)
        self.setToolTip(f"{block.label}: click the frame to collapse it into one node")

    def mousePressEvent(self, event) -> None:
        if event.button() == QtCore.Qt.MouseButton.LeftButton:
            self.view.toggle_block(self.block)
        event.accept()


class Legend(QtWidgets.QWidget):
    """A colour bar with the range of the metric shown, and the 'no data' swatch."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumWidth(160)  # fits a compact layout's side dock; the bar shrinks, the labels stay
        self.setFixedHeight(22)
        self.colours: tuple[str, ...] = ("#000000", "#ffffff")
        self.lo_text = self.hi_text = ""

    def set_range(self, colours: tuple[str, ...], lo: str, hi: str) -> None:
        self.colours, self.lo_text, self.hi_text = colours, lo, hi
        self.update()

    def paintEvent(self, _event) -> None:
        painter = QtGui.QPainter(self)
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        metrics = painter.fontMetrics()
        lo_w = metrics.horizontalAdvance(self.lo_text) + 6
        hi_w = metrics.horizontalAdvance(self.hi_text) + 6
        none_w = metrics.horizontalAdvance("no data") + 24
        bar = QtCore.QRectF(lo_w, 5, max(self.width() - lo_w - hi_w - none_w - 8, 20), 12)
        gradient = QtGui.QLinearGradient(bar.topLeft(), bar.topRight())
        for i, c in enumerate(self.colours):
            gradient.setColorAt(i / max(len(self.colours) - 1, 1), QtGui.QColor(c))
        painter.setPen(QtGui.QColor(theme.FOREGROUND))
        painter.drawText(QtCore.QRectF(0, 0, lo_w - 4, 22), QtCore.Qt.AlignmentFlag.AlignVCenter | QtCore.Qt.AlignmentFlag.AlignRight, self.lo_text)
        painter.drawText(QtCore.QRectF(bar.right() + 4, 0, hi_w, 22), QtCore.Qt.AlignmentFlag.AlignVCenter, self.hi_text)
        painter.setPen(QtCore.Qt.PenStyle.NoPen)
        painter.setBrush(gradient)
        painter.drawRoundedRect(bar, 3, 3)
        swatch = QtCore.QRectF(bar.right() + hi_w + 8, 5, 12, 12)
        painter.setBrush(QtGui.QColor(NO_DATA))
        painter.setPen(QtGui.QColor("#3b4150"))
        painter.drawRoundedRect(swatch, 2, 2)
        painter.setPen(QtGui.QColor(theme.MUTED))
        painter.drawText(QtCore.QRectF(swatch.right() + 4, 0, none_w, 22), QtCore.Qt.AlignmentFlag.AlignVCenter, "no data")


class NetworkView(QtWidgets.QWidget):
    """Layer graph coloured by a metric; the current layer and the phase's visited layers marked while paused."""

    layer_clicked = QtCore.Signal(str)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setStyleSheet(theme.VIEW_STYLE)
        self.metric_box = QtWidgets.QComboBox()
        for key, metric in METRICS.items():
            self.metric_box.addItem(metric.label, key)
        self.metric_box.setToolTip("What the colour of each layer shows")
        self.metric_box.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.metric_box.setMinimumContentsLength(12)  # long metric names elide in a narrow dock
        self.metric_box.currentIndexChanged.connect(lambda _i: self._recolour())
        self.legend = Legend()
        self.status = QtWidgets.QLabel()
        self.status.setStyleSheet(theme.LABEL_STYLE)
        self.status.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
        self.scene = QtWidgets.QGraphicsScene(self)
        self.graphics = QtWidgets.QGraphicsView(self.scene)
        self.graphics.setBackgroundBrush(QtGui.QColor(theme.BACKGROUND))
        self.graphics.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        self.graphics.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.graphics.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        self.graphics.setViewportUpdateMode(QtWidgets.QGraphicsView.ViewportUpdateMode.BoundingRectViewportUpdate)
        header = QtWidgets.QHBoxLayout()
        header.setContentsMargins(4, 2, 4, 2)
        colour_by = QtWidgets.QLabel("Colour by")
        header.addWidget(colour_by)
        header.addWidget(self.metric_box)
        header.addSpacing(8)
        header.addWidget(self.legend, 1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(header)
        layout.addWidget(self.status)
        layout.addWidget(self.graphics, 1)

        self.names: list[str] = []
        self.types: dict[str, str] = {}
        self.edges: list[tuple[str, str]] = []
        self.from_graph = False
        self.blocks: dict[tuple, bool] = {}  # block key -> expanded, kept across rebuilds
        self.items: dict[str, NodeItem] = {}  # layer or block label -> item on screen
        self.item_of: dict[str, NodeItem] = {}  # layer -> the item that shows it (itself or its collapsed block)
        self.edge_items: dict[tuple[str, str], QtWidgets.QGraphicsPathItem] = {}
        self.values: dict[str, float] = {}
        self.selected: str | None = None
        self.phase: str | None = None
        self.phase_step: int | None = None
        self.visited: list[str] = []
        self.current: str | None = None
        self._history: History | None = None
        self._capacity = 0
        self._rebuild_timer = QtCore.QTimer(self)
        self._rebuild_timer.setSingleShot(True)
        self._rebuild_timer.setInterval(80)
        self._rebuild_timer.timeout.connect(self._rebuild_if_resized)
        self._set_status()

    # --- data in ---
    def clear(self) -> None:
        """A new model: forget the graph and every mark."""
        self.names, self.types, self.edges, self.from_graph = [], {}, [], False
        self.blocks.clear()
        self.values.clear()
        self.selected = None
        self._history = None
        self.clear_wavefront()
        self._rebuild()

    def set_graph(self, graph) -> None:
        """Use the engine's layer graph (its nodes in execution order and observed edges, residuals included)."""
        self.names = [node.name for node in graph.nodes]
        self.types.update({node.name: node.type for node in graph.nodes})
        self.edges = list(graph.edges)
        self.from_graph = True
        self._rebuild()

    def refresh(self, history: History) -> None:
        """Recolour from the latest step; until the engine's graph arrives, chain the layers in forward order."""
        self._history = history
        latest = history.latest
        if latest is None:
            return
        names = [layer.name for layer in latest.layers]
        self.types.update({layer.name: layer.type for layer in latest.layers})
        if not self.from_graph and names != self.names:
            self.names = names
            self.edges = list(zip(names, names[1:]))
            self._rebuild()
        self._recolour()

    def set_layer(self, name: str | None) -> None:
        """Mark the layer selected elsewhere (the table, a finding)."""
        old = self.item_of.get(self.selected) if self.selected else None
        self.selected = name
        if old is not None:
            old.selected = False
            old.update()
        item = self.item_of.get(name) if name else None
        if item is not None:
            item.selected = True
            item.update()
            self.graphics.ensureVisible(item, 40, 40)

    def show_pause(self, event: PhaseEvent) -> None:
        """Move the wavefront to where the step is paused."""
        if (event.step, event.phase) != (self.phase_step, self.phase):
            self.phase, self.phase_step, self.visited = event.phase, event.step, []
        self.current = event.layer
        if event.layer is not None:
            if event.layer not in self.names and not self.from_graph:  # the first step: the graph grows as it runs
                if event.phase == "forward":
                    self.edges += [(self.names[-1], event.layer)] if self.names else []
                    self.names.append(event.layer)
                    self._rebuild()
            self.visited.append(event.layer)
        self._mark_wavefront()
        item = self.item_of.get(event.layer) if event.layer else None
        if item is not None:
            self.graphics.ensureVisible(item, 40, 40)

    def clear_wavefront(self) -> None:
        """No step is paused any more."""
        self.phase = self.phase_step = self.current = None
        self.visited = []
        self._mark_wavefront()

    def node_clicked(self, item: NodeItem) -> None:
        if item.block is not None:
            self.toggle_block(item.block)
        else:
            self.layer_clicked.emit(item.key)

    def toggle_block(self, block: Block) -> None:
        """Collapse an expanded block into one node, or expand a collapsed one."""
        self.blocks[block.key] = not self.blocks.get(block.key, True)
        self._rebuild()

    def metric(self) -> Metric:
        return METRICS[self.metric_box.currentData()]

    def set_metric(self, key: str) -> None:
        self.metric_box.setCurrentIndex(self.metric_box.findData(key))

    # --- building the scene (new graph, collapse, resize) ---
    def _row_capacity(self) -> int:
        return max(1, (self.graphics.viewport().width() - 2 * PAD - 24) // (NODE_W + H_GAP))  # a narrow dock: fewer

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._rebuild_timer.start()

    def _rebuild_if_resized(self) -> None:
        if self._row_capacity() != self._capacity:
            self._rebuild()

    def _rebuild(self) -> None:
        self.scene.clear()
        self.items, self.item_of, self.edge_items = {}, {}, {}
        self._capacity = capacity = self._row_capacity()
        grouped = group(self.names)
        default_open = len(self.names) <= COLLAPSE_ABOVE
        x = y = 0.0
        in_row = 0
        for entry in grouped:
            if isinstance(entry, Block):
                entry.expanded = self.blocks.setdefault(entry.key, default_open)
            if isinstance(entry, Block) and entry.expanded:
                n = len(entry.members)
                if in_row and (n > capacity or in_row + n > capacity):  # a block that fits the row stays on it
                    x, y, in_row = 0.0, y + NODE_H + ROW_GAP, 0
                rows = math.ceil(n / capacity)
                width = min(n, capacity) * (NODE_W + H_GAP) - H_GAP + 2 * PAD
                height = HEADER + rows * NODE_H + (rows - 1) * ROW_GAP + PAD
                self.scene.addItem(BlockFrame(self, entry, QtCore.QRectF(x - PAD, y - HEADER, width, height)))
                for i, name in enumerate(entry.members):
                    self._add_node(name, x + (i % capacity) * (NODE_W + H_GAP), y + (i // capacity) * (NODE_H + ROW_GAP))
                if rows == 1:
                    x += n * (NODE_W + H_GAP)
                    in_row += n
                else:
                    x, y, in_row = 0.0, y + rows * (NODE_H + ROW_GAP), 0
                continue
            if in_row >= capacity:
                x, y, in_row = 0.0, y + NODE_H + ROW_GAP, 0
            if isinstance(entry, Block):
                item = NodeItem(self, entry.label, f"▸ {entry.label}", f"block of {len(entry.members)} layers", entry)
                item.setToolTip(f"{entry.label}: {len(entry.members)} layers — click to expand\n" + ", ".join(entry.members[:12]))
                item.setPos(x, y)
                self.scene.addItem(item)
                self.items[entry.label] = item
                for name in entry.members:
                    self.item_of[name] = item
            else:
                self._add_node(name=entry, x=x, y=y)
            x += NODE_W + H_GAP
            in_row += 1
        self._add_edges()
        bounds = self.scene.itemsBoundingRect().adjusted(-PAD, -PAD, PAD, PAD)
        self.scene.setSceneRect(bounds)
        self._set_status()
        self._recolour()
        self.set_layer(self.selected)
        self._mark_wavefront()

    def _add_node(self, name: str, x: float, y: float) -> None:
        short = name.split(".")[-1] if block_of(name) else name
        item = NodeItem(self, name, short, self.types.get(name, ""))
        item.setToolTip(name)
        item.setPos(x, y)
        self.scene.addItem(item)
        self.items[name] = item
        self.item_of[name] = item

    def _add_edges(self) -> None:
        pen = QtGui.QPen(QtGui.QColor(EDGE), 1.6)
        pen.setCosmetic(True)
        for a, b in self.edges:
            ia, ib = self.item_of.get(a), self.item_of.get(b)
            if ia is None or ib is None or ia is ib or (ia.key, ib.key) in self.edge_items:
                continue
            path_item = self.scene.addPath(self._edge_path(ia, ib), pen)
            path_item.setZValue(-1)
            self.edge_items[(ia.key, ib.key)] = path_item

    @staticmethod
    def _edge_path(a: NodeItem, b: NodeItem) -> QtGui.QPainterPath:
        pa, pb = a.pos(), b.pos()
        path = QtGui.QPainterPath()
        if abs(pa.y() - pb.y()) < 1:  # same row: straight to the next node, an arc over skipped ones
            start, end = QtCore.QPointF(pa.x() + NODE_W, pa.y() + NODE_H / 2), QtCore.QPointF(pb.x(), pb.y() + NODE_H / 2)
            if pb.x() - pa.x() <= NODE_W + H_GAP + 1:
                path.moveTo(start)
                path.lineTo(end)
                arrow = end
            else:
                start, end = QtCore.QPointF(pa.x() + NODE_W / 2, pa.y()), QtCore.QPointF(pb.x() + NODE_W / 2, pb.y())
                lift = min(14 + 0.12 * (pb.x() - pa.x()), ROW_GAP - 6)
                path.moveTo(start)
                path.cubicTo(start + QtCore.QPointF(0, -lift), end + QtCore.QPointF(0, -lift), end)
                return path
        else:  # another row: from the bottom of one to the top of the other
            start, end = QtCore.QPointF(pa.x() + NODE_W / 2, pa.y() + NODE_H), QtCore.QPointF(pb.x() + NODE_W / 2, pb.y())
            bend = max((end.y() - start.y()) / 2, 12)
            path.moveTo(start)
            path.cubicTo(start + QtCore.QPointF(0, bend), end - QtCore.QPointF(0, bend), end)
            return path
        path.moveTo(arrow)  # a small arrow head on straight edges
        path.lineTo(arrow + QtCore.QPointF(-6, -4))
        path.moveTo(arrow)
        path.lineTo(arrow + QtCore.QPointF(-6, 4))
        return path

    # --- cheap updates (every step, every pause) ---
    def _recolour(self) -> None:
        metric = self.metric()
        latest = self._history.latest if self._history is not None else None
        values: dict[str, float] = {}
        if latest is not None:
            for layer in latest.layers:
                value = metric.value(layer)
                if value is not None and math.isfinite(value):
                    values[layer.name] = value
        self.values = values
        lo, hi = metric.fixed or _span(values.values())
        cmap = pg.ColorMap(np.linspace(0, 1, len(metric.colours)), [QtGui.QColor(c) for c in metric.colours])
        for key, item in self.items.items():
            members = item.block.members if item.block is not None else [key]
            known = [values[m] for m in members if m in values]
            if known:
                value = metric.worst(known)
                item.fill = cmap.map(min(max((value - lo) / (hi - lo), 0.0), 1.0), mode="qcolor")
                item.value_text = metric.fmt.format(value)
            else:
                item.fill = QtGui.QColor(NO_DATA)
                item.value_text = "" if latest is None else "–"
            item.update()
        fmt = "{:.0f}%" if metric.fixed == (0.0, 100.0) else "1e{:.1f}"
        self.legend.set_range(metric.colours, fmt.format(lo), fmt.format(hi))

    def _mark_wavefront(self) -> None:
        visited_items = {self.item_of[n].key for n in self.visited if n in self.item_of}
        current = self.item_of.get(self.current) if self.current else None
        colour_key = self.phase if self.phase in PHASE_COLOURS else None
        for key, item in self.items.items():
            item.visited = colour_key if key in visited_items else None
            item.current = item is current
            item.update()
        for (a, b), path_item in self.edge_items.items():
            lit = colour_key is not None and a in visited_items and b in visited_items
            pen = QtGui.QPen(QtGui.QColor(PHASE_COLOURS[colour_key] if lit else EDGE), 2.6 if lit else 1.6)
            pen.setCosmetic(True)
            path_item.setPen(pen)
        self._set_status()

    def _set_status(self) -> None:
        if not self.names:
            self.status.setText(theme.rich("The layers appear after the first step (or as Step Into reaches them).", theme.MUTED))
            return
        blocks = sum(1 for e in self.blocks.values() if not e)
        text = theme.rich(f"{len(self.names)} layers", theme.FOREGROUND, bold=True)
        if blocks:
            text += theme.rich(f"   {blocks} blocks collapsed", theme.MUTED)
        if self.phase in PHASE_COLOURS and self.current:
            arrow = "→" if self.phase == "forward" else "←"
            text += theme.rich(f"   {arrow} {self.phase} at ", theme.MUTED)
            text += theme.rich(self.current, PHASE_COLOURS[self.phase], bold=True)
            text += theme.rich(f"   ({len(self.visited)} of {len(self.names)} layers reached)", theme.MUTED)
        elif self.phase:
            text += theme.rich(f"   paused at the {self.phase}", theme.MUTED)
        else:
            text += theme.rich("   click a layer to select it, a block to collapse or expand it", theme.MUTED)
        self.status.setText(text)

    def export_targets(self) -> dict[str, QtWidgets.QWidget]:
        return {"network": self.graphics}


def _span(values) -> tuple[float, float]:
    values = list(values)
    if not values:
        return 0.0, 1.0
    lo, hi = math.floor(min(values) * 2) / 2, math.ceil(max(values) * 2) / 2
    return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)
