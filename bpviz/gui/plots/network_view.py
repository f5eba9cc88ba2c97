"""The model as a graph of its layers, each node coloured by a chosen metric, with the step's wavefront.

Layers flow left to right in execution order, wrapping into rows; layers
of one module block (`layer1.0.*`) sit in a frame that collapses into a
single node when clicked, so a few hundred layers stay readable. The scene
is built once per graph (or per collapse and resize); a new step only
recolours nodes, and a pause only re-marks them.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from bpviz.engine.record.history import History
from bpviz.engine.session.step_gate import PhaseEvent
from bpviz.gui import theme
from bpviz.gui.gradient_state import MEASURED, UNMEASURED
from bpviz.gui.plots.base import PlotView
from bpviz.gui.plots.network_graph import (
    COLLAPSE_ABOVE,
    METRICS,
    STATE_RANK,
    Block,
    Metric,
    block_of,
    fitting_metric,
    group,
    span,
)
from bpviz.gui.plots.network_items import NODE_H, NODE_W, BlockFrame, Legend, NodeItem

H_GAP, ROW_GAP = 30, 34
PAD, HEADER = 10, 22


class NetworkView(PlotView):
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
        self.metric_box.activated.connect(self._metric_chosen)  # by the user: kept from then on
        self._auto_metric = True  # until the user or a finding chooses, the metric follows the model
        self.legend = Legend()
        self.status = QtWidgets.QLabel()
        self.status.setStyleSheet(theme.LABEL_STYLE)
        self.status.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
        self.status.setWordWrap(True)  # in the dock of a 1280x800 screen its hint ran past the edge, cut mid-word
        self.scene = QtWidgets.QGraphicsScene(self)
        self.graphics = QtWidgets.QGraphicsView(self.scene)
        self.graphics.setBackgroundBrush(QtGui.QColor(theme.BACKGROUND))
        self.graphics.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        self.graphics.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.graphics.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        # the least height of the dock stays what it was before the legend took a line of its own: docks stacked
        # on a 1000 px screen add up their least heights, and the window would outgrow the screen
        self.graphics.setMinimumHeight(44)
        self.graphics.setViewportUpdateMode(QtWidgets.QGraphicsView.ViewportUpdateMode.BoundingRectViewportUpdate)
        header = QtWidgets.QHBoxLayout()
        header.setContentsMargins(4, 2, 4, 2)
        colour_by = QtWidgets.QLabel("Colour by")
        header.addWidget(colour_by)
        header.addWidget(self.metric_box)
        header.addStretch(1)
        legend = QtWidgets.QHBoxLayout()  # a line of its own: beside the metric, a side dock had no room for it
        legend.setContentsMargins(4, 0, 4, 2)
        legend.addWidget(self.legend, 1)
        legend.addStretch(0)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(header)
        layout.addLayout(legend)
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
        self.states: dict[str, str] = {}  # layers without a value, and why (the metric's `state`)
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
        self.states.clear()
        self.selected = None
        self._history = None
        self._auto_metric = True  # the next model gets a colouring that fits it
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
        if self._auto_metric:
            self.metric_box.blockSignals(True)
            self.metric_box.setCurrentIndex(self.metric_box.findData(fitting_metric(latest.layers)))
            self.metric_box.blockSignals(False)
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

    def colouring(self) -> Metric:
        """What the nodes are coloured by now (not `metric`: that name is QWidget's, which Qt calls for a
        paint device's metrics, as a grab of this view does)."""
        return METRICS[self.metric_box.currentData()]

    def set_metric(self, key: str) -> None:
        """Colour by `key` from now on, for this model (a finding chose it, or the user)."""
        self._auto_metric = False
        self.metric_box.setCurrentIndex(self.metric_box.findData(key))

    def _metric_chosen(self, _index: int) -> None:
        self._auto_metric = False

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
                self.scene.addItem(
                    BlockFrame(entry, QtCore.QRectF(x - PAD, y - HEADER, width, height), self.toggle_block)
                )
                for i, name in enumerate(entry.members):
                    self._add_node(
                        name, x + (i % capacity) * (NODE_W + H_GAP), y + (i // capacity) * (NODE_H + ROW_GAP)
                    )
                if rows == 1:
                    x += n * (NODE_W + H_GAP)
                    in_row += n
                else:
                    x, y, in_row = 0.0, y + rows * (NODE_H + ROW_GAP), 0
                continue
            if in_row >= capacity:
                x, y, in_row = 0.0, y + NODE_H + ROW_GAP, 0
            if isinstance(entry, Block):
                item = NodeItem(
                    entry.label, f"▸ {entry.label}", f"block of {len(entry.members)} layers", self.node_clicked, entry
                )
                item.setToolTip(
                    f"{entry.label}: {len(entry.members)} layers — click to expand\n" + ", ".join(entry.members[:12])
                )
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
        item = NodeItem(name, short, self.types.get(name, ""), self.node_clicked)
        item.setToolTip(name)
        item.setPos(x, y)
        self.scene.addItem(item)
        self.items[name] = item
        self.item_of[name] = item

    def _add_edges(self) -> None:
        pen = QtGui.QPen(QtGui.QColor(theme.EDGE), 1.6)
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
            start, end = (
                QtCore.QPointF(pa.x() + NODE_W, pa.y() + NODE_H / 2),
                QtCore.QPointF(pb.x(), pb.y() + NODE_H / 2),
            )
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
            start, end = (
                QtCore.QPointF(pa.x() + NODE_W / 2, pa.y() + NODE_H),
                QtCore.QPointF(pb.x() + NODE_W / 2, pb.y()),
            )
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
        metric = self.colouring()
        latest = self._history.latest if self._history is not None else None
        values: dict[str, float] = {}
        states: dict[str, str] = {}
        if latest is not None:
            for layer in latest.layers:
                value = metric.value(layer)
                if value is not None and math.isfinite(value):
                    values[layer.name] = value
                elif metric.state is not None and (state := metric.state(layer)) != MEASURED:
                    states[layer.name] = state
        self.values, self.states = values, states
        lo, hi = metric.fixed or span(values.values())
        cmap = pg.ColorMap(np.linspace(0, 1, len(metric.colours)), [QtGui.QColor(c) for c in metric.colours])
        shaded: list[tuple[NodeItem, float]] = []  # nodes coloured by value: one colour-map lookup for them all
        for key, item in self.items.items():
            members = item.block.members if item.block is not None else [key]
            known = [values[m] for m in members if m in values]
            if known:
                value = metric.worst(known)
                shaded.append((item, min(max((value - lo) / (hi - lo), 0.0), 1.0)))
                item.value_text = metric.fmt(value)
            elif any(m in states for m in members):
                state = max((states[m] for m in members if m in states), key=STATE_RANK.index)
                colour, item.value_text = metric.states[state]
                item.fill = QtGui.QColor(colour)
            else:
                item.fill = QtGui.QColor(theme.NO_DATA)
                item.value_text = "" if latest is None else "–"
            if item.block is None:  # a remedy may have changed the layer's type since the graph was drawn
                item.subtitle = self.types.get(key, item.subtitle)
            item.update()
        if shaded:
            colours = cmap.map(np.array([share for _item, share in shaded]), mode="qcolor")
            for (item, _share), colour in zip(shaded, colours):
                item.fill = colour
        # a state drawn in the colour of one listed before it (a sampled zero, a zero's) is listed only when shown
        swatches: list[tuple[str, str]] = []
        for state, (colour, label) in (metric.states or {}).items():
            if state in states.values() or colour not in {c for c, _ in swatches}:
                swatches.append((colour, label))
        if not metric.states or UNMEASURED not in metric.states:
            swatches.append((theme.NO_DATA, "no data"))
        self.legend.set_range(metric.colours, metric.scale(lo), metric.scale(hi), swatches)

    def _mark_wavefront(self) -> None:
        visited_items = {self.item_of[n].key for n in self.visited if n in self.item_of}
        current = self.item_of.get(self.current) if self.current else None
        colour_key = self.phase if self.phase in theme.PHASE_COLOURS else None
        for key, item in self.items.items():
            item.visited = colour_key if key in visited_items else None
            item.current = item is current
            item.update()
        for (a, b), path_item in self.edge_items.items():
            lit = colour_key is not None and a in visited_items and b in visited_items
            pen = QtGui.QPen(QtGui.QColor(theme.PHASE_COLOURS[colour_key] if lit else theme.EDGE), 2.6 if lit else 1.6)
            pen.setCosmetic(True)
            path_item.setPen(pen)
        self._set_status()

    def _set_status(self) -> None:
        if not self.names:
            self.status.setText(
                theme.rich("The layers appear after the first step (or as Step Into reaches them).", theme.MUTED)
            )
            return
        blocks = sum(1 for e in self.blocks.values() if not e)
        text = theme.rich(f"{len(self.names)} layers", theme.FOREGROUND, bold=True)
        if blocks:
            text += theme.rich(f"   {blocks} blocks collapsed", theme.MUTED)
        if self.phase in theme.PHASE_COLOURS and self.current:
            arrow = "→" if self.phase == "forward" else "←"
            text += theme.rich(f"   {arrow} {self.phase} at ", theme.MUTED)
            text += theme.rich(self.current, theme.PHASE_COLOURS[self.phase], bold=True)
            text += theme.rich(f"   ({len(self.visited)} of {len(self.names)} layers reached)", theme.MUTED)
        elif self.phase:
            text += theme.rich(f"   paused at the {self.phase}", theme.MUTED)
        else:
            text += theme.rich("   click a layer to select it, a block to collapse or expand it", theme.MUTED)
        self.status.setText(text)

    def export_targets(self) -> dict[str, QtWidgets.QWidget]:
        return {"network": self.graphics}

    def export_layer(self) -> None:
        """The whole network: no layer in its figure's name."""
        return None
