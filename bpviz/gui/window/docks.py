"""The debugger's docks: Network, Step, Breakpoints, Workbench and Hyperparameters, and what keeps them current.

`DebugDocks` is built from explicit collaborators (the host window, its
status bar, the training controller, the debugger page, the plot registry,
the settings, the Panels menu) and answers the controller's signals, all on
the GUI thread. It tells the window when its state changed through its own
signal; it knows no window class. The actions that drive the
debugger (Step Into, Step Out) live with every other action in actions.py.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QDockWidget, QFrame, QMainWindow, QMenu, QScrollArea, QStatusBar, QWidget

from bpviz.engine.diagnosis.unit_forensics import recorded_dead_units
from bpviz.engine.session.breakpoints import Breakpoint, Hit
from bpviz.engine.session.events import RunView
from bpviz.engine.session.step_gate import PhaseEvent
from bpviz.gui.panels.breakpoints_panel import BreakpointsPanel
from bpviz.gui.panels.hyperparams_panel import HyperparamsPanel
from bpviz.gui.panels.step_panel import StepPanel
from bpviz.gui.panels.workbench_panel import WorkbenchPanel
from bpviz.gui.plots.base import PlotRegistry
from bpviz.gui.plots.network_view import NetworkView
from bpviz.gui.training.controller import TrainingController
from bpviz.gui.window.debugger_page import DebuggerPage
from bpviz.gui.window.settings import Settings

log = logging.getLogger(__name__)
BREAKPOINTS_KEY = "breakpoints"


# The network colouring that shows a selected finding's problem across the model; other kinds leave
# the colouring the user chose.
FINDING_METRIC = {
    "dead_relu": "dead",
    "inactive_units": "dead",
    "vanishing_gradient": "grad",
    "exploding_gradient": "grad",
    "saturated_activation": "saturation",
}


class DebugDocks(QObject):
    """Creates the debugger's docks on `host` and keeps them in step with the training side."""

    state_changed = Signal()  # what is enabled may have changed
    continue_requested = Signal(int)  # the workbench's "Continue N steps"

    def __init__(
        self,
        host: QMainWindow,
        status: QStatusBar,
        controller: TrainingController,
        page: DebuggerPage,
        plots: PlotRegistry,
        settings: Settings,
        panels_menu: QMenu,
        viewed: Callable[[], RunView],
    ) -> None:
        super().__init__(host)
        self.host = host
        self.status = status
        self.controller = controller
        self.viewed = viewed  # the run the window shows (a recording's, or the controller's)
        self.page = page
        self.settings = settings
        self.panels_menu = panels_menu
        self.path: Path | None = None
        self._inspected: tuple[str, int] | None = None  # (layer, step) whose dead units were last asked for
        self._hidden_docks: list[QDockWidget] | None = None
        # A status message that holds until the state it describes ends (a pause, a breakpoint stop), and the
        # last step it still describes (None: until cleared explicitly).
        self._sticky: tuple[str, int | None] | None = None
        # The remedy (first step, label) the workbench and hyperparameters panels say was applied: they stop
        # saying so once the run shown no longer has it (see on_redrawn).
        self._applied: tuple[int, str] | None = None

        self.network = NetworkView()
        self.step_panel = StepPanel()
        self.breakpoints = BreakpointsPanel()
        self.workbench = WorkbenchPanel()
        self.hyperparams = HyperparamsPanel()
        plots.add("network", self.network)
        plots.add("workbench", self.workbench)
        self._make_docks()
        self._connect()
        self.show_docks(False)  # until a model is open; hidden docks must not stretch the start page's window
        host.layout().activate()  # forget the minimum size the visible docks asked for while being built

    # --- building ---
    def _make_docks(self) -> None:
        w = self.host

        def dock(title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea, scroll: bool = False) -> QDockWidget:
            d = QDockWidget(title, w)
            d.setObjectName(name)
            if scroll:  # a tall panel scrolls rather than forcing the window taller than the screen
                area_widget = QScrollArea()
                area_widget.setWidgetResizable(True)
                area_widget.setFrameShape(QFrame.Shape.NoFrame)
                # no fixed minimum: the panel's own, which its arrangement for the dock's shape sets, decides
                area_widget.setWidget(widget)
                d.setWidget(area_widget)
            else:
                d.setWidget(widget)
            d.setFeatures(
                QDockWidget.DockWidgetFeature.DockWidgetMovable
                | QDockWidget.DockWidgetFeature.DockWidgetClosable
                | QDockWidget.DockWidgetFeature.DockWidgetFloatable
            )
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
        self.docks = [
            self.network_dock,
            self.workbench_dock,
            self.step_dock,
            self.breakpoints_dock,
            self.hyperparams_dock,
        ]

    def _connect(self) -> None:
        c = self.controller
        c.paused.connect(self._on_paused)
        c.step_aborted.connect(self._on_aborted)
        c.failed.connect(lambda _e: self._end_stepping("The step failed."))
        c.breakpoint_hit.connect(self._on_breakpoint_hit)
        c.remedy_applied.connect(self._on_remedy_applied)
        c.remedy_failed.connect(self._on_remedy_failed)
        c.graph_changed.connect(self.network.set_graph)
        c.units_inspected.connect(self.workbench.show_units)
        c.hyperparameters.connect(self.hyperparams.set_values)
        c.loaded.connect(self._on_loaded)
        c.stepped.connect(self._on_stepped)
        c.run_started.connect(self._on_run_started)
        self.page.layer_selected.connect(self._on_layer_selected)
        self.page.findings_panel.finding_selected.connect(self._on_finding_selected)
        self.network.layer_clicked.connect(self.page.select_layer)
        self.breakpoints.changed.connect(self._on_breakpoints_changed)
        self.workbench.remedy_requested.connect(lambda name, args: self._apply(c.apply_remedy(name, *args)))
        self.workbench.undo_requested.connect(lambda: self._apply(c.undo_remedy()))
        self.workbench.layer_changed.connect(self._inspect)
        self.workbench.continue_requested.connect(self.continue_requested)
        self.hyperparams.apply_requested.connect(lambda changes: self._apply(c.apply_remedies(changes)))
        self.hyperparams.undo_button.clicked.connect(lambda: self._apply(c.undo_remedy()))

    # --- commands ---
    def set_busy(self, busy: bool, recording: bool = False) -> None:
        """Remedies apply between steps only: their panels are disabled while training is busy (or a recording,
        which trains nothing, is shown)."""
        self.workbench.set_busy(busy, recording)
        self.hyperparams.set_busy(busy)
        if not busy and self.workbench.layer is not None:  # between steps again: the full evidence can be asked
            self._inspect(self.workbench.layer)

    def describe_state(self, recording: bool) -> None:
        """The Step panel says what can be done now while no step is paused (the actions' own conditions)."""
        c = self.controller
        if recording:
            self.step_panel.set_idle("recording")
        elif c.running:
            self.step_panel.set_idle("running")
        else:
            self.step_panel.set_idle("ready" if c.has_model else "no model")

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
        self._forget_run()
        self.breakpoints.set_breakpoints(self._load_breakpoints(self.path))
        self.controller.set_breakpoints(self.breakpoints.breakpoints())
        self.show_docks(True)
        self.state_changed.emit()

    def show_recording(self, graph) -> None:
        """A recording opened: nothing of the previous run stays in the docks; its layer graph draws the network."""
        self._forget_run()
        if graph is not None:
            self.network.set_graph(graph)
        self.show_docks(True)

    def _forget_run(self) -> None:
        """Another model or run is shown: nothing of the previous one may stay in a dock."""
        self.network.clear()
        self.step_panel.clear()
        self.workbench.clear()
        self.hyperparams.remedy_gone()
        self.breakpoints.clear_hit()
        self._clear_sticky()
        self._inspected = None
        self._applied = None

    def _on_paused(self, event: PhaseEvent) -> None:
        if self.controller.paused_at is not event:
            return  # stale: the step was stopped or resumed meanwhile
        self.step_panel.show_event(event)
        self.network.show_pause(event)
        self.step_dock.show()
        self.step_dock.raise_()
        if not self.network_dock.isHidden() and self.network_dock not in self.host.tabifiedDockWidgets(self.step_dock):
            self.network_dock.raise_()
        where = f" at {event.layer}" if event.layer else ""
        self._show_sticky(
            f"Paused in step {event.step}: {event.phase}{where}.   F11 next · Shift+F11 finish phase · "
            f"F10 finish step · F5 continue · F6 drop this step",
            None,
        )
        self.state_changed.emit()

    def _on_aborted(self) -> None:
        self._end_stepping("Step stopped: weights, buffers and history are as they were before it.")
        self.status.showMessage("Step stopped; nothing of it was kept.", 6000)

    def _on_stepped(self, step: int) -> None:
        if self.step_panel.event is not None or self.network.phase is not None:
            self._end_stepping(f"Step {step} finished.")
        elif self.step_panel.note is not None:  # "Step 5 finished." says nothing true once step 6 is recorded
            self.step_panel.clear()
        if self._sticky is not None and self._sticky[1] is not None and step > self._sticky[1]:
            self._clear_sticky()

    def _on_run_started(self, _total: int) -> None:
        self.breakpoints.clear_hit()
        self._clear_sticky()

    def _show_sticky(self, text: str, last_step: int | None) -> None:
        """Show `text` until `_clear_sticky`, or until a step after `last_step` is recorded."""
        self._sticky = (text, last_step)
        self.status.showMessage(text)

    def _clear_sticky(self) -> None:
        """Take the sticky message down, unless something newer already replaced it."""
        if self._sticky is not None and self.status.currentMessage() == self._sticky[0]:
            self.status.clearMessage()
        self._sticky = None

    def _end_stepping(self, note: str) -> None:
        self._clear_sticky()
        self.step_panel.clear(note)
        self.network.clear_wavefront()
        self.state_changed.emit()

    def _on_breakpoint_hit(self, hit: Hit) -> None:
        self.breakpoints.show_hit(hit)
        self.breakpoints_dock.show()
        self.breakpoints_dock.raise_()
        if hit.layer:
            self.page.select_layer(hit.layer)
        self._show_sticky(f"Stopped at a breakpoint, step {hit.step}: {hit.reason}", hit.step)

    def _on_remedy_applied(self, step: int, label: str) -> None:
        self.workbench.remedy_applied(step, label)
        self.hyperparams.applied(step, label)
        self._applied = (step, label)
        self.status.showMessage(f"From step {step}: {label}", 8000)
        self._inspected = None

    def _on_remedy_failed(self, why: str) -> None:
        self.workbench.remedy_failed(why)
        self._applied = None  # the workbench's message names the failure now
        self.status.showMessage(why, 8000)
        self.state_changed.emit()

    def on_redrawn(self, _step: int) -> None:
        """The window shows a new step (the network and workbench were drawn with it)."""
        history = self.viewed().history
        self.hyperparams.set_undoable(history.remedies_in_force() > 0)
        if self._applied is not None and self._applied not in self.controller.view.history.interventions:
            # rewound to before it: "Applied from step 6" would name a remedy the run no longer has (a scrub back
            # in time leaves the message, which tells where the run stands, not the step shown)
            self._applied = None
            self.workbench.remedy_gone()
            self.hyperparams.remedy_gone()
        latest = history.latest
        if latest is not None:
            self.breakpoints.set_layers([layer.name for layer in latest.layers])
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
            self.settings.set_file_value(self.path, BREAKPOINTS_KEY, json.dumps([b.to_dict() for b in breakpoints]))

    def _inspect(self, layer: str) -> None:
        """The dead units of `layer` at the step shown: asked of the experiment process between steps (their
        incoming weights too), else (a recording, or while it trains) as the step's record tells them."""
        shown = self.viewed().history.latest
        if self.viewed() is not self.controller.view or self.controller.busy:
            if shown is not None:
                self.workbench.show_units(layer, shown.step, recorded_dead_units(shown, layer))
                self._inspected = None  # shown without their weights: asked again once the process can answer
            return
        latest = self.controller.view.history.latest
        if latest is None:
            return
        if self._inspected != (layer, latest.step):
            self._inspected = (layer, latest.step)
            self.controller.inspect_units(layer)

    def _apply(self, accepted: bool) -> None:
        if not accepted:
            self.status.showMessage("Remedies apply between steps: pause training first.", 5000)
        self.state_changed.emit()

    def _load_breakpoints(self, path: Path) -> list[Breakpoint]:
        raw = self.settings.file_value(path, BREAKPOINTS_KEY, "")
        if not raw:
            return []
        try:
            return [Breakpoint.from_dict(d) for d in json.loads(raw)]
        except (ValueError, TypeError, AttributeError):
            log.warning("ignoring unreadable saved breakpoints for %s", path)
            return []
