"""The window's debugger: Debug menu and keys, and the Network, Step, Breakpoints, Workbench and Hyperparameters docks.

`DebugTools` wires the panels to the DebugController (commands) and to the
worker's answers; the main window only creates it and asks it to update
which actions are enabled.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFrame, QScrollArea, QStyle, QToolBar, QWidget

from bpviz.engine.session.breakpoints import Breakpoint, Hit
from bpviz.engine.session.step_gate import PhaseEvent
from bpviz.gui.panels.breakpoints_panel import BreakpointsPanel
from bpviz.gui.panels.hyperparams_panel import HyperparamsPanel
from bpviz.gui.panels.step_panel import StepPanel
from bpviz.gui.plots.network_view import NetworkView
from bpviz.gui.panels.workbench_panel import WorkbenchPanel

if TYPE_CHECKING:
    from bpviz.gui.window.main_window import MainWindow

log = logging.getLogger(__name__)
BREAKPOINTS_KEY = "breakpoints"


# The network colouring that shows a selected finding's problem across the model; other kinds leave
# the colouring the user chose.
FINDING_METRIC = {
    "dead_relu": "dead",
    "vanishing_gradient": "grad",
    "exploding_gradient": "grad",
    "saturated_activation": "saturation",
}


class DebugTools(QObject):
    """Creates the debugger's actions and docks on `window` and keeps them in step with the worker."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.controller = window.controller
        self.path: Path | None = None
        self._inspected: tuple[str, int] | None = None  # (layer, step) whose dead units were last asked for
        self._hidden_docks: list[QDockWidget] | None = None

        self.network = NetworkView()
        self.step_panel = StepPanel()
        self.breakpoints = BreakpointsPanel()
        self.workbench = WorkbenchPanel()
        self.hyperparams = HyperparamsPanel()
        self._make_actions()
        self._make_docks()
        self._connect()
        self.show_docks(False)  # until a model is open; hidden docks must not stretch the start page's window
        window.layout().activate()  # forget the minimum size the visible docks asked for while being built

    # --- building ---
    def _make_actions(self) -> None:
        w, a = self.window, self.window.actions_
        sp = QStyle.StandardPixmap

        def make(text: str, slot, shortcut, icon, tip: str) -> QAction:
            action = QAction(text, w)
            action.setShortcut(QKeySequence(shortcut))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            action.setIcon(w.style().standardIcon(icon))
            keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            action.setToolTip(f"{tip}  ({keys})")
            action.setStatusTip(tip)
            action.triggered.connect(lambda _checked=False: slot())
            return action

        self.step_into = make("Step &Into", self.do_step_into, Qt.Key.Key_F11, sp.SP_ArrowDown,
                              "Pause inside the step: at each layer forward, the loss, each layer backward, the update")
        self.step_out = make("Step O&ut", self.controller.step_out, "Shift+F11", sp.SP_ArrowUp,
                             "Finish the current phase of the paused step")
        a.step.setText("Step &Over")
        a.step.setToolTip("One whole training step; when paused inside a step, finish it  (F10)")
        a.pause.setToolTip("Pause a run after its step; stop a paused step (nothing of it is kept)  (F6)")

        bar = w.menuBar()
        help_menu = next((m for m in bar.actions() if m.text() == "&Help"), None)
        self.menu = bar.addMenu("&Debug")
        if help_menu is not None:  # Debug before Help, as in every IDE
            bar.insertMenu(help_menu, self.menu)
        for action in (self.step_into, a.step, self.step_out, a.run, a.pause):
            self.menu.addAction(action)
        a.view_menu.addSeparator()
        self.panels_menu = a.view_menu  # each dock's show/hide toggle

        toolbar = w.findChild(QToolBar, "trainingToolbar")
        if toolbar is not None:
            actions = toolbar.actions()
            after_step = actions[actions.index(a.step) + 1] if a.step in actions else None
            toolbar.insertAction(a.step, self.step_into)
            if after_step is not None:
                toolbar.insertAction(after_step, self.step_out)

    def _make_docks(self) -> None:
        w = self.window

        def dock(title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea, scroll: bool = False) -> QDockWidget:
            d = QDockWidget(title, w)
            d.setObjectName(name)
            if scroll:  # a tall panel scrolls rather than forcing the window taller than the screen
                area_widget = QScrollArea()
                area_widget.setWidgetResizable(True)
                area_widget.setFrameShape(QFrame.Shape.NoFrame)
                area_widget.setWidget(widget)
                widget.setMinimumHeight(widget.minimumSizeHint().height())
                d.setWidget(area_widget)
            else:
                d.setWidget(widget)
            d.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetClosable
                          | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
            w.addDockWidget(area, d)
            self.panels_menu.addAction(d.toggleViewAction())
            return d

        bottom, right = Qt.DockWidgetArea.BottomDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
        self.network_dock = dock("Network", "networkDock", self.network, bottom)
        self.workbench_dock = dock("Dead-neuron workbench", "workbenchDock", self.workbench, bottom, scroll=True)
        self.step_dock = dock("Step", "stepDock", self.step_panel, right)
        self.breakpoints_dock = dock("Breakpoints", "breakpointsDock", self.breakpoints, right)
        self.hyperparams_dock = dock("Hyperparameters", "hyperparamsDock", self.hyperparams, right)
        # where they go, tabbed and sized, is the window layout's choice (roomy or compact): gui.window.layout
        self.docks = [self.network_dock, self.workbench_dock, self.step_dock, self.breakpoints_dock, self.hyperparams_dock]

    def _connect(self) -> None:
        w, worker, c = self.window, self.controller.worker, self.controller
        worker.paused.connect(self._on_paused)
        worker.step_aborted.connect(self._on_aborted)
        worker.failed.connect(lambda _e: self._end_stepping("The step failed."))
        worker.breakpoint_hit.connect(self._on_breakpoint_hit)
        worker.remedy_applied.connect(self._on_remedy_applied)
        worker.remedy_failed.connect(self._on_remedy_failed)
        worker.graph_changed.connect(self.network.set_graph)
        worker.units_inspected.connect(self.workbench.show_units)
        worker.hyperparameters.connect(self.hyperparams.set_values)
        w.loaded.connect(self._on_loaded)
        w.stepped.connect(self._on_stepped)
        w.redrawn.connect(self._on_redrawn)
        w.run_started.connect(lambda _total: self.breakpoints.clear_hit())
        w.page.layer_selected.connect(self._on_layer_selected)
        w.page.findings_panel.finding_selected.connect(self._on_finding_selected)
        w.stack.currentChanged.connect(lambda _i: self.show_docks(w.stack.currentWidget() is w.page))
        self.network.layer_clicked.connect(w.page.select_layer)
        self.breakpoints.changed.connect(self._on_breakpoints_changed)
        self.workbench.remedy_requested.connect(lambda name, args: self._apply(c.apply_remedy(name, *args)))
        self.workbench.undo_requested.connect(lambda: self._apply(c.undo_remedy()))
        self.workbench.layer_changed.connect(self._inspect)
        self.workbench.continue_requested.connect(w.run_n)
        self.hyperparams.apply_requested.connect(lambda changes: self._apply(c.apply_remedies(changes)))
        self.hyperparams.undo_button.clicked.connect(lambda: self._apply(c.undo_remedy()))

    # --- commands ---
    def do_step_into(self) -> None:
        """F11: step into a new step, or one event further in the paused one."""
        self.controller.step_into()
        self.window._update_actions()
        if self.controller.stepping:
            self.window.statusBar().showMessage("Stepping into the step…", 3000)

    def update_actions(self) -> None:
        """Enable what makes sense now; called whenever the window's state changes."""
        c, a = self.controller, self.window.actions_
        paused = c.paused_at is not None
        idle = c.has_model and not c.busy
        self.step_into.setEnabled(idle or paused)
        self.step_out.setEnabled(paused)
        a.step.setEnabled(idle or paused)
        a.run.setEnabled(idle or paused)
        a.run.setText("&Continue" if paused else "&Run")
        a.run_n.setEnabled(idle)
        a.validate.setEnabled(idle)
        a.pause.setEnabled(c.running or c.stepping)
        self.workbench.set_busy(not idle)
        self.hyperparams.set_busy(not idle)

    def show_docks(self, shown: bool) -> None:
        """Docks go with the debugger page: hidden on the start page, back as they were once a model is open."""
        if not shown:
            visible = [d for d in self.docks if not d.isHidden()]
            if visible or self._hidden_docks is None:
                self._hidden_docks = visible or list(self.docks)
            for d in self.docks:
                d.hide()
        elif self._hidden_docks is not None:
            for d in self._hidden_docks:
                d.show()
            self._hidden_docks = None

    # --- answers ---
    def _on_loaded(self, request) -> None:
        self.path = Path(request.path)
        self.network.clear()
        self.step_panel.clear()
        self.workbench.clear()
        self.breakpoints.clear_hit()
        self._inspected = None
        self.breakpoints.set_breakpoints(self._load_breakpoints(self.path))
        self.controller.set_breakpoints(self.breakpoints.breakpoints())
        self.show_docks(True)
        self.update_actions()

    def _on_paused(self, event: PhaseEvent) -> None:
        if self.controller.paused_at is not event:
            return  # stale: the step was stopped or resumed meanwhile
        self.step_panel.show_event(event)
        self.network.show_pause(event)
        self.step_dock.show()
        self.step_dock.raise_()
        if not self.network_dock.isHidden() and self.network_dock not in self.window.tabifiedDockWidgets(self.step_dock):
            self.network_dock.raise_()
        where = f" at {event.layer}" if event.layer else ""
        self.window.statusBar().showMessage(
            f"Paused in step {event.step}: {event.phase}{where}.   F11 next · Shift+F11 finish phase · "
            f"F10 finish step · F5 continue · F6 stop")
        self.window._update_actions()

    def _on_aborted(self) -> None:
        self._end_stepping("Step stopped: weights, buffers and history are as they were before it.")
        self.window.statusBar().showMessage("Step stopped; nothing of it was kept.", 6000)

    def _on_stepped(self, step: int) -> None:
        if self.step_panel.event is not None or self.network.phase is not None:
            self._end_stepping(f"Step {step} finished.")

    def _end_stepping(self, note: str) -> None:
        self.step_panel.clear(note)
        self.network.clear_wavefront()
        self.window._update_actions()

    def _on_breakpoint_hit(self, hit: Hit) -> None:
        self.breakpoints.show_hit(hit)
        self.breakpoints_dock.show()
        self.breakpoints_dock.raise_()
        if hit.layer:
            self.window.page.select_layer(hit.layer)
        self.window.statusBar().showMessage(f"Stopped at a breakpoint, step {hit.step}: {hit.reason}")

    def _on_remedy_applied(self, step: int, label: str) -> None:
        self.window.history.interventions.append((step, label))
        self.workbench.remedy_applied(step, label)
        self.hyperparams.applied(step, label)
        self.window.statusBar().showMessage(f"From step {step}: {label}", 8000)
        self._inspected = None
        self.window.redraw(force=True)
        self.window._update_actions()

    def _on_remedy_failed(self, why: str) -> None:
        self.workbench.remedy_failed(why)
        self.window.statusBar().showMessage(why, 8000)
        self.window._update_actions()

    def _on_redrawn(self, step: int) -> None:
        history = self.window.history
        self.network.refresh(history)
        latest = history.latest
        if latest is not None:
            self.breakpoints.set_layers([layer.name for layer in latest.layers])
        self.workbench.refresh(history)
        if self.workbench.layer is not None:
            self._inspect(self.workbench.layer)

    def _on_finding_selected(self, finding) -> None:
        metric = FINDING_METRIC.get(finding.kind)
        if metric is not None:
            self.network.set_metric(metric)

    def _on_layer_selected(self, name: str | None) -> None:
        self.network.set_layer(name)
        if name is not None:
            self.workbench.select(name)

    def _on_breakpoints_changed(self, breakpoints: list[Breakpoint]) -> None:
        self.controller.set_breakpoints(breakpoints)
        if self.path is not None:
            self.window.settings.set_file_value(self.path, BREAKPOINTS_KEY, json.dumps([b.to_dict() for b in breakpoints]))

    def _inspect(self, layer: str) -> None:
        latest = self.window.history.latest
        if latest is None or self.controller.busy:
            return
        if self._inspected != (layer, latest.step):
            self._inspected = (layer, latest.step)
            self.controller.inspect_units(layer)

    def _apply(self, accepted: bool) -> None:
        if not accepted:
            self.window.statusBar().showMessage("Remedies apply between steps: pause training first.", 5000)
        self.window._update_actions()

    def _load_breakpoints(self, path: Path) -> list[Breakpoint]:
        raw = self.window.settings.file_value(path, BREAKPOINTS_KEY, "")
        if not raw:
            return []
        try:
            return [Breakpoint.from_dict(d) for d in json.loads(raw)]
        except (ValueError, TypeError, AttributeError):
            log.warning("ignoring unreadable saved breakpoints for %s", path)
            return []
