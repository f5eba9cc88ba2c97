"""Debugger commands for the training thread: step into a step, stop at breakpoints, apply remedies live.

`DebugWorker` extends the training worker with commands that run on the
training thread (a gated step, remedies, dead-unit forensics) and signals
back to the window. `DebugController` is the GUI thread's handle; it talks
to the gate directly (resume/abort are thread-safe and must not wait behind
the paused worker's event loop) and to the worker through queued signals.
"""
from __future__ import annotations

import dataclasses

from PySide6.QtCore import QObject, Signal, Slot

from bpviz.engine.session import remedies
from bpviz.engine.session.breakpoints import Breakpoint, first_hit
from bpviz.engine.session.step_gate import INTO, OUT, OVER, Gate, PhaseEvent
from bpviz.engine.diagnosis.unit_forensics import dead_units
from bpviz.gui.training.worker import TrainingController, TrainingWorker, internal_error

# Remedies the window may ask for by name, with their arguments after the name.
REMEDIES = ("replace_activation", "reinit_dead_units", "set_hyperparameter", "set_gradient_clipping", "lower_lr")


class DebugWorker(TrainingWorker):
    """The training worker plus the debugger's commands; every slot runs on the training thread."""

    paused = Signal(object)  # PhaseEvent: the step is blocked in a hook until the gate is resumed or aborted
    breakpoint_hit = Signal(object)  # breakpoints.Hit: the run stopped after the step it names
    remedy_applied = Signal(int, str)  # first step it affects, label ("undo: …" for an undo)
    remedy_failed = Signal(str)  # why a remedy could not be applied, for the user
    graph_changed = Signal(object)  # layer_graph.LayerGraph, whenever the engine recorded a new one
    units_inspected = Signal(str, int, object)  # layer, step, list[unit_forensics.DeadUnit]
    hyperparameters = Signal(object)  # {"lr", "momentum", "weight_decay", "clip"}: values now (None: not there)

    def __init__(self) -> None:
        super().__init__()
        # on_pause runs on the training thread; emitting from there queues the event to the window.
        self.gate = Gate(on_pause=self.paused.emit)
        self.breakpoints: list[Breakpoint] = []  # replaced whole by the GUI thread, never changed in place
        self._graph = None

    def _after_load(self) -> None:
        """A new model: forget the old one's graph and say what its optimizer is set to."""
        self._graph = None
        self.read_hyperparameters()

    @Slot(str, int)
    def step_into(self, mode: str, step_id: int) -> None:
        """One step that pauses where `mode` says (INTO: at every layer); `step_id` lets a stop sent earlier win."""
        if self.stepper is None:
            self.step_aborted.emit()
            return
        self.gate.arm(mode)
        # A stop requested before this command arrived must not be forgotten by arm(): check after arming.
        if self._stop_upto >= step_id:
            self.gate.finish()
            self.step_aborted.emit()
            return
        self._step_once(self.gate)

    @Slot(str, object)
    def apply_remedy(self, name: str, args: tuple) -> None:
        """Apply remedy `name` (see REMEDIES) between steps and mark it on the time axis."""
        if self.stepper is None:
            return
        try:
            if name == "lower_lr":
                lr = self.stepper.experiment.optimizer.param_groups[0]["lr"]
                remedy = remedies.set_hyperparameter(self.stepper, "lr", lr / float(args[0] if args else 10.0))
            elif name in REMEDIES:
                remedy = getattr(remedies, name)(self.stepper, *args)
            else:
                raise ValueError(f"unknown remedy {name!r}")
        except (ValueError, KeyError) as exc:
            self.remedy_failed.emit(str(exc).strip("'\""))
            return
        except Exception as exc:  # noqa: BLE001 - shown in the window, never crashes it
            self.failed.emit(internal_error(f"Applying {name} failed", exc))
            self.remedy_failed.emit(f"{name} failed: {exc}")
            return
        self.stepper.apply(remedy)
        self.remedy_applied.emit(remedy.step, remedy.label)
        self.read_hyperparameters()

    @Slot()
    def undo_remedy(self) -> None:
        """Take back the latest remedy still applied."""
        if self.stepper is None:
            return
        try:
            remedy = self.stepper.undo_last()
        except Exception as exc:  # noqa: BLE001
            self.remedy_failed.emit(f"Undo failed: {exc}")
            return
        if remedy is None:
            self.remedy_failed.emit("Nothing to undo: no remedy is applied.")
            return
        step, label = self.stepper.history.interventions[-1]
        self.remedy_applied.emit(step, label)
        self.read_hyperparameters()

    @Slot(str)
    def inspect_units(self, layer: str) -> None:
        """The dead units of `layer` at the latest step, with the evidence about their death."""
        stepper = self.stepper
        latest = stepper.history.latest if stepper is not None else None
        if latest is None:
            return
        try:
            found = dead_units(stepper.history, stepper.watcher.catalog, stepper.watcher.tracker, layer)
        except (KeyError, ValueError, IndexError):
            found = []  # not (or no longer) a ReLU-family layer
        self.units_inspected.emit(layer, latest.step, found)

    @Slot()
    def read_hyperparameters(self) -> None:
        """Report the optimizer's learning rate, momentum, weight decay and the gradient clipping now in force."""
        if self.stepper is None:
            return
        group = self.stepper.experiment.optimizer.param_groups[0]
        momentum = group.get("momentum", group["betas"][0] if "betas" in group else None)
        self.hyperparameters.emit({
            "lr": group.get("lr"),
            "momentum": momentum,
            "weight_decay": group.get("weight_decay"),
            "clip": self.stepper.clip_grad_norm,
        })

    def _step_once(self, gate=None) -> bool:
        ok = super()._step_once(gate)
        if ok:
            graph = self.stepper.watcher.graph
            if graph is not None and graph is not self._graph:
                self._graph = graph
                self.graph_changed.emit(graph)
        return ok

    def _stop_after_step(self) -> bool:
        breakpoints = self.breakpoints
        stepper = self.stepper
        if not breakpoints or stepper is None or stepper.history.latest is None:
            return False
        records = stepper.history.records
        previous = records[-2] if len(records) > 1 else None
        hit = first_hit(breakpoints, records[-1], previous, stepper.watcher.changed_findings)
        if hit is None:
            return False
        self.breakpoint_hit.emit(hit)
        return True


class DebugController(TrainingController):
    """The GUI thread's handle on the debugger: step into/over/out, continue, stop, remedies."""

    worker_class = DebugWorker
    _step_into = Signal(str, int)
    _remedy = Signal(str, object)
    _undo = Signal()
    _inspect = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        worker: DebugWorker = self.worker
        self._step_into.connect(worker.step_into)
        self._remedy.connect(worker.apply_remedy)
        self._undo.connect(worker.undo_remedy)
        self._inspect.connect(worker.inspect_units)
        worker.paused.connect(self._on_paused)
        worker.stepped.connect(self._on_step_ended)
        worker.failed.connect(self._on_step_ended)
        worker.step_aborted.connect(self._on_step_ended)
        worker.step_aborted.connect(self._on_idle)
        worker.remedy_applied.connect(self._on_idle)
        worker.remedy_failed.connect(self._on_idle)
        worker.loaded.connect(self._on_step_ended)
        self.paused_at: PhaseEvent | None = None  # where the step is blocked now
        self.stepping = False  # a gated step is in progress (paused or between two pauses)

    @property
    def gate(self) -> Gate:
        return self.worker.gate

    # --- stepping ---
    def step_into(self) -> None:
        """F11: start a step paused at its first layer, or go on to the next layer of the paused one."""
        if self.paused_at is not None:
            self._resume(INTO)
        elif self.has_model and not self.busy:
            self.busy = self.stepping = True
            self._run_id += 1
            self._step_into.emit(INTO, self._run_id)

    def step_out(self) -> None:
        """Shift+F11: finish the current phase and pause at the first event of the next."""
        if self.paused_at is not None:
            self._resume(OUT)

    def step(self) -> None:
        """F10 (Step Over): a whole step; when paused mid-step, finish that step."""
        if self.paused_at is not None:
            self._resume(OVER)
        elif not self.stepping:
            super().step()

    def run(self, total: int = 0) -> None:
        """F5 (Continue): when paused, finish the step, then train on (until a breakpoint or Pause)."""
        if self.stepping:
            if self.paused_at is None:
                return  # between two pauses: the next one arrives at once
            self._resume(OVER)
        super().run(total)

    def stop(self) -> None:
        """Pause a run after its step, and stop a paused (or about to pause) step where it is.

        The engine rolls back a step stopped before its update and completes one stopped at
        the update pause (its weights have changed), so model and history always agree.
        """
        super().stop()
        self.worker.gate.abort()

    # --- breakpoints and remedies ---
    def set_breakpoints(self, breakpoints: list[Breakpoint]) -> None:
        """Hand the worker copies of `breakpoints`; it checks them after every step of a run."""
        self.worker.breakpoints = [dataclasses.replace(b) for b in breakpoints]

    def apply_remedy(self, name: str, *args) -> bool:
        """Queue remedy `name` for between steps; False when training is busy (running or paused)."""
        if not self.has_model or self.busy:
            return False
        self.busy = True
        self._remedy.emit(name, tuple(args))
        return True

    def apply_remedies(self, changes: list[tuple[str, tuple]]) -> bool:
        """Queue several remedies, applied in order (the hyperparameters panel's Apply)."""
        if not self.has_model or self.busy or not changes:
            return False
        self.busy = True
        for name, args in changes:
            self._remedy.emit(name, tuple(args))
        return True

    def undo_remedy(self) -> bool:
        if not self.has_model or self.busy:
            return False
        self.busy = True
        self._undo.emit()
        return True

    def inspect_units(self, layer: str) -> None:
        """Ask for the dead units of `layer` (answered by worker.units_inspected); skipped while training."""
        if self.has_model and not self.busy:
            self._inspect.emit(layer)

    # --- bookkeeping ---
    def _resume(self, mode: str) -> None:
        self.paused_at = None
        self.worker.gate.resume(mode)

    def _on_paused(self, event: PhaseEvent) -> None:
        if self.stepping:
            self.paused_at = event

    def _on_step_ended(self, *_args) -> None:
        self.paused_at = None
        self.stepping = False
