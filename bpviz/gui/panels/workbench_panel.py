"""The dead-neuron workbench: which units of a ReLU-family layer died and when, why, and live remedies.

A units × steps timeline (each unit's share of active samples), the dead
units with the evidence about their death, remedies applied between steps
(each undoable and marked on the time axis), and the dead-count and loss
curves to compare before and after. The panel only asks: the window sends
remedies to the experiment process and answers with `show_units`.
"""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtWidgets

from bpviz.engine.diagnosis.dead_relu import inactive_not_dead
from bpviz.engine.diagnosis.unit_forensics import DeadUnit
from bpviz.engine.record.history import History
from bpviz.engine.record.records import LayerStep, StepRecord
from bpviz.engine.report.percent import percent_text
from bpviz.engine.session.remedies import already_is, type_in_force
from bpviz.gui import theme
from bpviz.gui.fitted_header import FittedHeader
from bpviz.gui.format import number
from bpviz.gui.plots.dead_and_loss import DeadAndLossCurves
from bpviz.gui.plots.intervention_marks import InterventionMarks
from bpviz.gui.plots.traces import LayerTrace, reads
from bpviz.gui.plots.unit_timeline import UnitTimeline
from bpviz.gui.reflow_grid import ReflowGrid

TIMELINE_STEPS = 500
WIDE_AT = 1.6  # width / height from which the plots sit beside the table and remedies, not above them
LOW_AT = 3.0  # ... and from which the two plots sit side by side: stacked in a low dock, the second was cut off
LOW_PLOT_HEIGHT = 96  # px the plots may shrink to there, so the roomy layout's bottom dock row shows them whole
COLUMNS = ("unit", "died at step", "pre-act max", "bias", "‖w‖ in", "bias step at death")
# under an activation swapped in that passes silent units a gradient, a unit that falls silent has not died
INACTIVE_COLUMNS = ("unit", "silent since step", "pre-act max", "bias", "‖w‖ in", "bias step then")
# the key first: a narrow dock elides the end of the title
TIMELINE_TITLE = "○ = {}   ·   each unit's share of active samples per step (dark = silent)"
COMPARE_STEPS = 5  # steps averaged on each side of a remedy
CONTINUE_HINT = "Continue training to compare."  # after a remedy, until a step has run through it
TABLE_ROWS = 4  # dead units the table shows at the least


@reads("unit_activity")
def _activity(layer: LayerStep):
    return layer.unit_activity


@reads("dead_units", "units")
def _silent(layer: LayerStep):
    """[dead, inactive] units: silent units are dead under a ReLU, inactive under an activation swapped in that
    still passes them a gradient (LeakyReLU, GELU). Counted as one, the steps under a swap read as dead units,
    and after its undo the workbench compared the ReLU's dead units with the LeakyReLU's "dead" ones."""
    if layer.dead_units is None:
        return None
    return (0, layer.dead_units) if inactive_not_dead(layer) else (layer.dead_units, 0)


def _unbroken(text: str) -> str:
    """`text` kept on one line where the comparison wraps: it broke "0.3415 →" from "0.3199"."""
    return text.replace(" ", "&nbsp;")


class WorkbenchPanel(QtWidgets.QWidget):
    """Dead units of one layer, and what to do about them."""

    layer_changed = QtCore.Signal(str)
    remedy_requested = QtCore.Signal(str, object)  # remedy name (engine.session.remedies.REMEDIES), argument tuple
    undo_requested = QtCore.Signal()
    continue_requested = QtCore.Signal(int)  # train this many steps

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setStyleSheet(theme.VIEW_STYLE)
        self.layer: str | None = None
        self.units: list[DeadUnit] = []
        self.units_step: int | None = None
        self._history: History | None = None
        self._activity = self._silent_trace = None
        self._order: np.ndarray | None = None  # rows of the timeline: dead units by time of death, then the living
        self._busy = True
        self._recording = False  # a recording is shown: nothing is trained, no remedy can be applied
        self._applied_from: int | None = None  # the step the latest remedy acts from, until a step ran through it

        self.layer_box = QtWidgets.QComboBox()
        self.layer_box.setObjectName("workbenchLayer")
        self.layer_box.setMinimumWidth(160)
        self.layer_box.setToolTip("ReLU-family layers, with their share of dead units at the latest step")
        self.layer_box.currentIndexChanged.connect(self._on_layer_box)
        self.summary = FittedHeader()  # at 1280 wide it read "61 of 64 un…": now whole parts or none
        self.summary.setStyleSheet(theme.LABEL_STYLE)

        # timeline: x = step, y = unit (dead first, by step of death)
        self.unit_timeline = UnitTimeline(
            "unit (dead first)", symbol="o", size=5, pen=theme.pen(theme.BAD, 1.2), brush=None
        )
        self.timeline_widget, self.timeline = self.unit_timeline.widget, self.unit_timeline.plot
        self.timeline_marks = InterventionMarks(self.timeline)
        self._set_timeline_title(inactive=False)

        self.dead_and_loss = DeadAndLossCurves()
        self.curves_widget, self.curves = self.dead_and_loss.widget, self.dead_and_loss.plot
        self.dead_curve, self.loss_curve = self.dead_and_loss.dead_curve, self.dead_and_loss.loss_curve
        self.curve_marks = self.dead_and_loss.marks
        self.timeline.showAxis("right")  # same width as the curves' loss axis, so both plots share their step axis
        self.timeline.getAxis("right").setWidth(48)
        self.timeline.getAxis("right").setStyle(showValues=False)
        self.compare = QtWidgets.QLabel()
        self.compare.setObjectName("workbenchCompare")
        self.compare.setStyleSheet(theme.LABEL_STYLE)
        self.compare.setWordWrap(True)

        self.table = QtWidgets.QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("deadUnitTable")
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(20)
        # rows enough to compare units when stacked in a tall dock, where the layout keeps no more for it than this
        header = self.table.horizontalHeader().sizeHint().height()
        scroll_bar = self.table.horizontalScrollBar().sizeHint().height()
        self._table_height = header + TABLE_ROWS * 20 + scroll_bar + 2 * self.table.frameWidth()
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setAlternatingRowColors(True)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setSortingEnabled(True)
        # lowest unit first, as its arrow says (a header's own default order is descending: 63, 62, ... under ▲)
        self.table.sortByColumn(0, QtCore.Qt.SortOrder.AscendingOrder)
        self.table.setStyleSheet(
            f"QTableWidget {{ background: {theme.BACKGROUND}; alternate-background-color: {theme.PANEL}; }}"
        )
        self.table_title = QtWidgets.QLabel("Dead units")
        self.table_title.setStyleSheet("font-weight: 600;")

        self.reinit = QtWidgets.QPushButton("Re-initialise dead units")
        self.reinit.setToolTip("Fresh He-initialised incoming weights, zero bias and no momentum for the dead units")
        self.reinit.clicked.connect(lambda: self._request("reinit_dead_units", self.layer))
        self.leaky = QtWidgets.QPushButton("→ LeakyReLU")
        self.leaky.setToolTip("Replace the activation: negative inputs keep a small gradient")
        self.leaky.clicked.connect(lambda: self._request("replace_activation", self.layer, "leaky_relu"))
        self.gelu = QtWidgets.QPushButton("→ GELU")
        self.gelu.setToolTip("Replace the activation by GELU, which has no dead zone")
        self.gelu.clicked.connect(lambda: self._request("replace_activation", self.layer, "gelu"))
        self.lower_lr = QtWidgets.QPushButton("Learning rate ÷10")
        self.lower_lr.clicked.connect(lambda: self._request("lower_lr", 10.0))
        self.clip_value = QtWidgets.QDoubleSpinBox()
        self.clip_value.setRange(1e-4, 1e6)
        self.clip_value.setDecimals(3)
        self.clip_value.setValue(1.0)
        self.clip_value.setPrefix("at ")
        self.clip = QtWidgets.QPushButton("Clip gradients")
        self.clip.setToolTip("Clip the total gradient norm before each update")
        self.clip.clicked.connect(lambda: self._request("set_gradient_clipping", self.clip_value.value()))
        self.undo = QtWidgets.QPushButton("Undo last remedy")
        self.undo.clicked.connect(self.undo_requested.emit)
        self.steps = QtWidgets.QSpinBox()
        self.steps.setRange(1, 100_000)
        self.steps.setValue(20)
        self.steps.setSuffix(" steps")
        self.go = QtWidgets.QPushButton("Continue")
        self.go.setToolTip("Train on, to compare the curves before and after the remedy")
        self.go.clicked.connect(lambda: self.continue_requested.emit(self.steps.value()))
        self.message = QtWidgets.QLabel()
        self.message.setObjectName("workbenchMessage")
        self.message.setWordWrap(True)
        # two lines kept for it even when empty: a message appearing grew the box and moved Continue from under
        # the mouse between the remedy's click and the next
        self.message.setMinimumHeight(2 * self.message.fontMetrics().lineSpacing() + 4)
        self.message.setStyleSheet(f"color: {theme.MUTED}; padding: 2px;")

        remedies = QtWidgets.QGroupBox("Remedies (applied between steps, undoable)")
        # three rows where the dock is wide, not seven: in a dock 200 px tall the table and Continue must stay
        # in view; six rows of two where it is narrow, rather than half the buttons past its edge
        self.remedy_grid = ReflowGrid(
            [
                (self.reinit, 2),
                (self.leaky, 1),
                (self.gelu, 1),
                (self.clip, 1),
                (self.clip_value, 1),
                (self.lower_lr, 1),
                (self.undo, 1),
                (self.steps, 1),
                (self.go, 1),
                (self.message, 2),
            ]
        )
        QtWidgets.QVBoxLayout(remedies).addWidget(self.remedy_grid)
        self.buttons = [self.reinit, self.leaky, self.gelu, self.lower_lr, self.clip, self.undo, self.go]
        for button in self.buttons:
            # focused by a click, a button the request then disables handed the focus on to the clip spin box,
            # text selected, where the next key typed replaced the value: reached by Tab only
            button.setFocusPolicy(QtCore.Qt.FocusPolicy.TabFocus)

        self._top = top = QtWidgets.QHBoxLayout()
        top.setContentsMargins(4, 2, 4, 2)
        label = QtWidgets.QLabel("Layer")
        label.setSizePolicy(QtWidgets.QSizePolicy.Policy.Maximum, QtWidgets.QSizePolicy.Policy.Preferred)
        top.addWidget(label)  # the box, not its label, takes a row the header left
        top.addWidget(self.layer_box)
        top.addWidget(self.summary, 1)
        self.plots = plots = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        plots.addWidget(self.timeline_widget)
        plots.addWidget(self.curves_widget)
        plots.setSizes([300, 200])
        left = QtWidgets.QWidget()
        left_layout = QtWidgets.QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.setSpacing(2)
        left_layout.addWidget(self.compare)  # before/after first: it is the answer to "did the remedy work?"
        left_layout.addWidget(plots, 1)
        right = QtWidgets.QWidget()
        table_box = QtWidgets.QVBoxLayout()
        table_box.addWidget(self.table_title)
        table_box.addWidget(self.table, 1)
        # table beside the remedies in a low dock, above them in a tall one (see resizeEvent)
        self.right_layout = QtWidgets.QBoxLayout(QtWidgets.QBoxLayout.Direction.LeftToRight, right)
        self.right_layout.setContentsMargins(4, 0, 0, 0)
        self.right_layout.addLayout(table_box, 1)
        self.right_layout.addWidget(remedies, 0, QtCore.Qt.AlignmentFlag.AlignTop)
        self.splitter = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        self.splitter.setObjectName("workbenchSplitter")
        self._split: QtCore.Qt.Orientation | None = None  # the arrangement made for the room the panel has
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self._rows = layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(2)
        layout.addLayout(top)
        layout.addWidget(self.splitter, 1)
        self.set_busy(True)
        self._set_summary(None)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._arrange()

    def event(self, event: QtCore.QEvent) -> bool:
        """Inside a scroll area (its dock's), follow the viewport's size too (see `_room`)."""
        if event.type() == QtCore.QEvent.Type.ParentChange and self.parentWidget() is not None:
            self.parentWidget().installEventFilter(self)
        return super().event(event)

    def eventFilter(self, watched: QtCore.QObject, event: QtCore.QEvent) -> bool:  # noqa: N802 - Qt's name
        if watched is self.parentWidget() and event.type() == QtCore.QEvent.Type.Resize:
            self._arrange()
        return False

    def _room(self) -> QtCore.QSize:
        """The space the panel is shown in: in a scroll area the viewport's without scroll bars. The panel itself
        is never lower than its minimum, which the stacked arrangement raises: judged by its own height, a low
        dock kept it stacked; by the viewport's with the scroll bar that arrangement brought, a dock reached from a
        narrow size stayed stacked where one reached from a wide size did not."""
        parent = self.parentWidget()
        area = parent.parentWidget() if parent is not None else None
        return area.maximumViewportSize() if isinstance(area, QtWidgets.QAbstractScrollArea) else self.size()

    def _arrange(self) -> None:
        """Side by side in a wide, low dock (below the plots); stacked in a narrow, tall one (a side column); and
        in a very low one, the two plots side by side too."""
        room = self._room()
        wide = room.width() >= WIDE_AT * room.height()
        orientation = QtCore.Qt.Orientation.Horizontal if wide else QtCore.Qt.Orientation.Vertical
        if self._split != orientation:  # the first arrangement too: its shares are set, not the splitter's defaults
            self._split = orientation
            self.splitter.setOrientation(orientation)
            box = QtWidgets.QBoxLayout.Direction
            self.right_layout.setDirection(box.LeftToRight if wide else box.TopToBottom)
            length = room.width() if wide else room.height()
            self.splitter.setSizes(
                [int(length * 0.5), int(length * 0.5)] if wide else [int(length * 0.35), int(length * 0.65)]
            )
            # the header beside the layer box in a wide dock; in a narrow one a row of its own, where beside the
            # box it had room for "…" alone
            self._rows.removeWidget(self.summary)
            self._top.removeWidget(self.summary)
            if wide:
                self._top.addWidget(self.summary, 1)
            else:
                self._rows.insertWidget(1, self.summary)
        low = room.width() >= LOW_AT * room.height()
        plots = QtCore.Qt.Orientation.Horizontal if low else QtCore.Qt.Orientation.Vertical
        if self.plots.orientation() != plots:
            self.plots.setOrientation(plots)
            self.plots.setSizes([1, 1])
            for widget in (self.timeline_widget, self.curves_widget):
                widget.setMinimumHeight(LOW_PLOT_HEIGHT if low else theme.PLOT_MIN_HEIGHT)
        # beside the remedies the table has their height; stacked under everything else, only what it asks for
        self.table.setMinimumHeight(0 if wide else self._table_height)

    # --- data in ---
    def clear(self) -> None:
        """A new model."""
        self.layer_box.blockSignals(True)
        self.layer_box.clear()
        self.layer_box.blockSignals(False)
        self.layer = None
        self._history = None
        self.show_units(None, None, [])
        self._activity = self._silent_trace = None
        self.unit_timeline.clear()
        self.dead_and_loss.clear()
        self.timeline_marks.clear()
        self.compare.setText("")
        self.message.setText("")
        self._applied_from = None
        self._set_summary(None)
        self._update_buttons()

    def refresh(self, history: History) -> None:
        """Bring the layer list, the timeline and the curves up to the latest step."""
        self._history = history
        latest = history.latest
        if latest is None:
            self._update_buttons()
            return
        self._fill_layers(latest)
        self._update_buttons()
        self._hint_done(latest)
        self.timeline_marks.update(history)
        self.curve_marks.update(history)
        if self.layer is None:
            return
        if self._activity.update(history):
            self._draw_timeline()
        if self._silent_trace.update(history):
            silent = self._silent_trace.values
            self.dead_and_loss.show_silent(self._silent_trace.steps, silent[:, 0], silent[:, 1])
        self.loss_curve.setData(
            np.asarray(history.loss_steps, dtype=np.float64),
            np.asarray(history.losses, dtype=np.float64),
            connect="finite",
        )
        self._set_summary(latest)
        self._compare(history)
        self._fit_steps()

    def export_targets(self) -> dict[str, QtWidgets.QWidget]:
        """The unit timeline and the dead-units/loss curves, for PNG/SVG export."""
        return {"unit timeline": self.timeline_widget, "dead units and loss": self.curves_widget}

    def export_layer(self) -> str | None:
        """The workbench's own layer, which need not be the one selected in the table."""
        return self.layer

    def _fit_steps(self) -> None:
        """Both plots over the same steps: the timeline's (the newest TIMELINE_STEPS), set rather than linked,
        since two linked views each switch the other's auto-range off."""
        steps = self._activity.steps if self._activity is not None and len(self._activity) else None
        if steps is None and self._silent_trace is not None and len(self._silent_trace):
            steps = self._silent_trace.steps
        if steps is None:
            return
        lo, hi = float(steps[0]) - 0.5, float(steps[-1]) + 0.5
        self.timeline.setXRange(lo, hi, padding=0)
        self.curves.setXRange(lo, hi, padding=0.01)
        if self._silent_trace is not None and len(self._silent_trace):
            shown = self._shown_layer()
            units = float(shown.units or 1) if shown is not None else 1.0
            self.curves.setYRange(0, max(float(self._silent_trace.values.max()), units * 0.1, 1.0), padding=0.05)

    def select(self, layer: str) -> bool:
        """Work on `layer` when it is ReLU-family; False otherwise."""
        index = self.layer_box.findData(layer)
        if index < 0:
            return False
        self.layer_box.setCurrentIndex(index)
        return True

    def show_units(self, layer: str | None, step: int | None, units: list[DeadUnit]) -> None:
        """The dead units of `layer` at `step`, with the evidence about their death."""
        if layer is not None and layer != self.layer:
            return
        self.units, self.units_step = list(units), step
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(units))
        for row, unit in enumerate(units):
            values = (unit.unit, unit.died_at, unit.preact_max, unit.bias, unit.weight_norm, unit.bias_step)
            for column, value in enumerate(values):
                item = QtWidgets.QTableWidgetItem()
                item.setData(QtCore.Qt.ItemDataRole.DisplayRole, value if column < 2 else number(value))
                if column >= 2 and value is not None:
                    item.setData(QtCore.Qt.ItemDataRole.UserRole, float(value))
                item.setTextAlignment(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, column, item)
        self.table.setSortingEnabled(True)
        self.table.resizeColumnsToContents()
        where = f" at step {step}" if step is not None else ""
        silent = self._shown_layer()
        inactive = silent is not None and inactive_not_dead(silent)
        self.table.setHorizontalHeaderLabels(list(INACTIVE_COLUMNS if inactive else COLUMNS))
        self._set_timeline_title(inactive)
        kind = "Inactive units" if inactive else "Dead units"
        self.table_title.setText(f"{kind} of {layer}{where}: {len(units)}" if layer else "Dead units")
        died = {u.unit: u.died_at for u in units}
        self._order = None
        if died and self._activity is not None and len(self._activity):
            width = self._activity.values.shape[1]
            dead = sorted((d, u) for u, d in died.items() if u < width)
            alive = [u for u in range(width) if u not in died]
            self._order = np.array([u for _, u in dead] + alive, dtype=np.int64)
        self._draw_timeline()

    def set_busy(self, busy: bool, recording: bool = False) -> None:
        """Remedies apply between steps only: disabled while training runs or a step is paused, and in a
        `recording`, which trains nothing."""
        self._busy = busy
        self._recording = recording
        self._update_buttons()

    def _update_buttons(self) -> None:
        ready = not self._busy and self._history is not None
        for button in self.buttons:
            button.setEnabled(ready and self.layer is not None)
        for button in (self.lower_lr, self.clip, self.go):
            button.setEnabled(ready)
        layer = self._shown_layer()
        now = type_in_force(self._history, layer.name, layer.type) if layer is not None else None
        for button, new in ((self.leaky, "leaky_relu"), (self.gelu, "gelu")):  # a swap that would change nothing
            button.setEnabled(button.isEnabled() and not (now is not None and already_is(now, new)))
        # enabled with nothing to take back, it only answered "Nothing to undo"
        self.undo.setEnabled(ready and self._history.remedies_in_force() > 0)

    def _set_timeline_title(self, inactive: bool) -> None:
        """The circles mark a unit's death, or under a swapped-in LeakyReLU/GELU, when it fell silent."""
        title = TIMELINE_TITLE.format("fell silent" if inactive else "died")
        theme.set_title(self.timeline, title, colour=theme.MUTED, size="8pt")

    def _shown_layer(self) -> LayerStep | None:
        """The workbench's layer as the latest step shows it; None when there is none."""
        latest = self._history.latest if self._history is not None else None
        return next((x for x in latest.layers if x.name == self.layer), None) if latest is not None else None

    def remedy_applied(self, step: int, label: str) -> None:
        self.message.setStyleSheet(f"color: {theme.LOSS}; padding: 2px;")
        self.message.setText(f"Applied from step {step}: {label}. {CONTINUE_HINT}")
        self._applied_from = step

    def _hint_done(self, latest: StepRecord) -> None:
        """Once a step has run through the remedy, the message stops asking to continue training."""
        if self._applied_from is not None and latest.step >= self._applied_from:
            self.message.setText(self.message.text().replace(f" {CONTINUE_HINT}", ""))
            self._applied_from = None

    def remedy_gone(self) -> None:
        """The run shown no longer has the remedy the message names (rewound before it)."""
        self.message.setText("")

    def remedy_failed(self, why: str) -> None:
        self.message.setStyleSheet(f"color: {theme.BAD}; padding: 2px;")
        self.message.setText(why)

    # --- drawing ---
    def _fill_layers(self, record: StepRecord) -> None:
        layers = [layer for layer in record.layers if layer.units]
        names = [layer.name for layer in layers]
        current = [self.layer_box.itemData(i) for i in range(self.layer_box.count())]
        if names != current:
            self.layer_box.blockSignals(True)
            self.layer_box.clear()
            for layer in layers:
                self.layer_box.addItem(layer.name, layer.name)
            self.layer_box.blockSignals(False)
            if names:
                worst = max(layers, key=lambda l: (l.dead_units or 0) / l.units)
                self.select(self.layer if self.layer in names else worst.name)
                self._on_layer_box(self.layer_box.currentIndex())
        for i, layer in enumerate(layers):
            share = (layer.dead_units or 0) / layer.units
            word = "inactive" if inactive_not_dead(layer) else "dead"
            self.layer_box.setItemText(i, f"{layer.name}  ({percent_text(share, 0)} {word})")

    def _on_layer_box(self, index: int) -> None:
        layer = self.layer_box.itemData(index) if index >= 0 else None
        if layer == self.layer and self._activity is not None:
            return
        self.layer = layer
        self._activity = LayerTrace(layer, _activity, limit=TIMELINE_STEPS) if layer else None
        self._silent_trace = LayerTrace(layer, _silent) if layer else None
        self._order = None
        self.units = []
        self.table.setRowCount(0)
        self.dead_and_loss.show_silent([], [], [])
        if layer is not None:
            self.layer_changed.emit(layer)
            if self._history is not None:
                self.refresh(self._history)

    def _draw_timeline(self) -> None:
        trace = self._activity
        if trace is None or len(trace) == 0:
            self.unit_timeline.clear()
            return
        steps, activity = trace.steps, trace.values
        units = activity.shape[1]
        order = self._order if self._order is not None and len(self._order) == units else np.arange(units)
        self.unit_timeline.show(steps, activity[:, order])
        row_of = np.empty(units, dtype=np.int64)
        row_of[order] = np.arange(units)
        died = [(u.died_at, row_of[u.unit]) for u in self.units if u.unit < units and u.died_at >= steps[0]]
        self.unit_timeline.mark([d for d, _ in died], [r for _, r in died])
        self.timeline.setYRange(-0.5, units - 0.5, padding=0.01)

    def _set_summary(self, latest: StepRecord | None) -> None:
        if self.layer is None or latest is None:
            self.summary.setText(
                theme.rich("Select a ReLU-family layer (ReLU, LeakyReLU, …) to see its units.", theme.MUTED)
            )
            return
        layer = self._shown_layer()
        if layer is None:
            return
        dead = layer.dead_units or 0
        share = f"{dead} of {layer.units} units {{}} ({percent_text(dead / layer.units, 0)})"
        # the count first: a narrow dock (1280x800) keeps the first parts whole and drops the rest, and there
        # the layer's name, which the layer box beside it shows, left room for nothing else ("relu2 …")
        parts = []
        step = theme.rich(f"   step {latest.step}", theme.MUTED)
        inactive = inactive_not_dead(layer)
        if inactive:  # a LeakyReLU/GELU swapped in: its silent units still get a gradient
            parts += [theme.rich(share.format("inactive, not dead"), theme.MUTED, bold=True), step]
            parts.append(theme.rich(f"   ·   {layer.type} passes them a gradient", theme.MUTED))
        else:
            parts += [theme.rich(share.format("dead"), theme.BAD if dead else theme.LOSS, bold=True), step]
        if self.units:
            first = min(u.died_at for u in self.units)
            went = "fell silent" if inactive else "died"
            parts.append(theme.rich(f"   ·   the first {went} at step {first}", theme.MUTED))
        self.summary.set_parts(parts)

    def _compare(self, history: History) -> None:
        """Dead units and loss before and since the latest remedy or undo: after an undo, what taking it back did
        (compared with the remedy undone, the line credited it with what followed the undo)."""
        if not history.interventions or self._silent_trace is None or len(self._silent_trace) == 0:
            hint = (
                "A recorded run: no remedy was applied in it up to this step."
                if self._recording
                else "Apply a remedy, then continue training: the curves compare before and after."
            )
            self.compare.setText(theme.rich(hint, theme.MUTED))
            return
        step, label = history.interventions[-1]
        steps, silent = self._silent_trace.steps, self._silent_trace.values
        before, after = silent[steps < step], silent[steps >= step]
        losses, loss_steps = np.asarray(history.losses), np.asarray(history.loss_steps)
        before_loss = losses[loss_steps < step][-COMPARE_STEPS:]
        after_loss = losses[loss_steps >= step][-COMPARE_STEPS:]
        # each phrase on one line: a narrow dock wraps between them, where it broke "dead | units" and "-> | LeakyReLU"
        text = theme.rich(f"Since step {step} " + _unbroken(f"({label}):") + " ", theme.MUTED)
        if len(before) and len(after):
            (dead_before, inactive_before), (dead_after, inactive_after) = before[-1], after[-1]
            colour = theme.LOSS if dead_after < dead_before else theme.BAD
            text += theme.rich(_unbroken("dead units "), theme.MUTED)
            text += theme.rich(_unbroken(f"{dead_before:.0f} → {dead_after:.0f}"), colour, bold=True)
            if inactive_before:  # an undo: the swapped-in activation's silent units were not dead
                text += " " + theme.rich(_unbroken(f"(before: {inactive_before:.0f} inactive, not dead)"), theme.MUTED)
            if inactive_after:
                text += " " + theme.rich(_unbroken(f"({inactive_after:.0f} inactive, not dead)"), theme.MUTED)
        else:
            text += theme.rich("no step since; continue training to compare", theme.MUTED)
        if len(before_loss) and len(after_loss):
            text += "   " + theme.rich(_unbroken(f"loss (mean of last {COMPARE_STEPS}) "), theme.MUTED)
            text += theme.rich(_unbroken(f"{before_loss.mean():.4g} → {after_loss.mean():.4g}"), theme.FOREGROUND, True)
        self.compare.setText(text)

    def _request(self, name: str, *args) -> None:
        self.message.setStyleSheet(f"color: {theme.MUTED}; padding: 2px;")
        self.message.setText("Applying…")
        self.remedy_requested.emit(name, tuple(args))
