"""The window's one handle on the training side: commands out, answers in, on the GUI thread.

Everything the window asks of training goes through `TrainingController`,
and everything training answers comes back as one of its signals, emitted
on the GUI thread: the worker's signals reach only this object's slots
(queued, since it lives on the GUI thread), which keep the bookkeeping
(busy, running, paused), apply run events to the `RunView` the window
draws, and re-emit. So no callable of the window ever runs on the training
thread, and moving training into another process later changes this file
and the worker, not the window.

Pauses are answered through the gate directly (resume/abort are
thread-safe and must not wait behind the paused worker's event loop).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from bpviz.engine.config import Config
from bpviz.engine.session.breakpoints import Breakpoint, Hit
from bpviz.engine.session.events import Intervened, Rewound, RunView, StepRecorded, Validated
from bpviz.engine.session.step_gate import INTO, OUT, OVER, PhaseEvent
from bpviz.engine.user_error import UserCodeError
from bpviz.gui.training.process_client import ProcessClient
from bpviz.gui.training.worker import LoadRequest, TrainingWorker

QUEUED = Qt.ConnectionType.QueuedConnection


def leave_a_core_for_the_window() -> int:
    """Cap torch's intra-op threads one below the core count, so the window's thread always finds a free core.

    With every core in torch's pool, the GUI thread preempts one of the pool's
    threads and every parallel op waits at its barrier for it: training slows
    several-fold and the window stutters. Returns the thread count in use.
    """
    import torch

    cores = os.cpu_count() or 1
    if cores > 1 and torch.get_num_threads() >= cores:
        torch.set_num_threads(cores - 1)
    return torch.get_num_threads()


class TrainingController(QObject):
    """Sends commands to the worker; knows whether a run or a paused step is going; owns the window's RunView."""

    # answers, emitted on the GUI thread once the bookkeeping and the RunView are up to date
    loaded = Signal(object)  # LoadRequest; `view` is a fresh, empty RunView
    load_failed = Signal(object)  # UserCodeError; the previous model (if any) stays
    failed = Signal(object)  # UserCodeError from a step, a validation or a remedy
    stepped = Signal(int)  # a step was recorded into `view` (its number)
    validated = Signal(int, object)  # step, metrics (kept in `view`)
    remedy_applied = Signal(int, str)  # first step it affects, label (kept in `view`)
    remedy_failed = Signal(str)
    run_started = Signal(int)  # total, 0 for "until paused"
    progress = Signal(int, int)  # done, total
    run_finished = Signal(str)  # "done" | "stopped" | "failed" | "breakpoint"
    step_aborted = Signal()
    paused = Signal(object)  # PhaseEvent, only while it is still where the step stands
    breakpoint_hit = Signal(object)  # Hit
    graph_changed = Signal(object)  # LayerGraph
    units_inspected = Signal(str, int, object)  # layer, step, list[DeadUnit]
    hyperparameters = Signal(object)  # dict of the values now in force
    rewound = Signal(int, int)  # the step gone back to (`view` ends there), the branch trained from now on

    # commands, delivered to the worker thread through queued connections
    _load = Signal(object)
    _step = Signal()
    _step_into = Signal(str, int)
    _run = Signal(int, int)
    _validate = Signal()
    _remedy = Signal(str, object)
    _undo = Signal()
    _rewind = Signal(int)
    _inspect = Signal(str)
    _close = Signal()

    def __init__(self, parent: QObject | None = None, child_process: bool = False) -> None:
        """`child_process`: run the experiment in its own process (ProcessClient), else on a thread here."""
        super().__init__(parent)
        leave_a_core_for_the_window()
        self.view = RunView(Config().history_steps)
        self.request: LoadRequest | None = None  # what the current model was loaded from
        self.run_path: Path | None = None  # the run file its steps are recorded into (None: not recording)
        self.pending: LoadRequest | None = None  # a load on its way
        self._run_id = 0
        self.has_model = False
        self.running = False
        self.busy = False  # a command is on its way or in progress
        self.paused_at: PhaseEvent | None = None  # where the gated step is blocked now
        self.stepping = False  # a gated step is in progress (paused or between two pauses)

        self.child_process = child_process
        if child_process:
            self.thread = None
            self.worker = w = ProcessClient(self)
            w.died.connect(self._on_died, QUEUED)  # after the answers it sent before dying, like them
        else:
            self.thread = QThread()
            self.thread.setObjectName("bpviz-training")
            self.worker = w = TrainingWorker()
            w.moveToThread(self.thread)
        for command, slot in (
            (self._load, w.load),
            (self._step, w.step),
            (self._step_into, w.step_into),
            (self._run, w.run),
            (self._validate, w.validate),
            (self._remedy, w.apply_remedy),
            (self._undo, w.undo_remedy),
            (self._rewind, w.rewind),
            (self._inspect, w.inspect_units),
            (self._close, w.close),
        ):
            command.connect(slot, QUEUED)
        for answer, slot in (
            (w.loaded, self._on_loaded),
            (w.load_failed, self._on_load_failed),
            (w.failed, self._on_failed),
            (w.event, self._on_event),
            (w.remedy_failed, self._on_remedy_failed),
            (w.run_started, self._on_run_started),
            (w.progress, self.progress),
            (w.run_finished, self._on_run_finished),
            (w.step_aborted, self._on_step_aborted),
            (w.paused, self._on_paused),
            (w.breakpoint_hit, self._on_breakpoint_hit),
            (w.graph_changed, self.graph_changed),
            (w.units_inspected, self.units_inspected),
            (w.hyperparameters, self.hyperparameters),
        ):
            answer.connect(slot, QUEUED)
        if self.thread is not None:
            self.thread.start()

    # --- commands ---
    def load(self, request: LoadRequest) -> None:
        """Load `request` on the worker (replacing any model); `loaded` or `load_failed` answers."""
        self.stop()
        self.pending = request
        self.busy = True
        self._load.emit(request)

    def reset(self) -> bool:
        """Rebuild the model from the same file with the same seed; False when nothing was loaded."""
        if self.request is None:
            return False
        self.load(self.request)
        return True

    def step(self) -> None:
        """F10 (Step Over): a whole step; when paused mid-step, finish that step."""
        if self.paused_at is not None:
            self._resume(OVER)
        elif self.has_model and not self.running and not self.stepping:
            self.busy = True
            self._step.emit()

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

    def run(self, total: int = 0) -> None:
        """Train `total` steps (0: until `stop`); when paused, finish the step first (F5, Continue)."""
        if self.stepping:
            if self.paused_at is None:
                return  # between two pauses: the next one arrives at once
            self._resume(OVER)
        if self.has_model and not self.running:
            self.running = True  # set now, not when the worker answers, so a second click cannot queue a second run
            self.busy = True
            self._run_id += 1
            self._run.emit(total, self._run_id)

    def stop(self) -> None:
        """Pause a run after its step, and stop a paused (or about to pause) step where it is.

        The engine rolls back a step stopped before its update and completes one stopped at
        the update pause (its weights have changed), so model and history always agree.
        """
        self.worker.request_stop(self._run_id)
        self.worker.gate.abort()
        if self.child_process and self.busy:
            self.worker.end_unless_answered()  # a step that never returns ends with its process

    def validate(self) -> None:
        if self.has_model and not self.running:
            self.busy = True
            self._validate.emit()

    def set_breakpoints(self, breakpoints: list[Breakpoint]) -> None:
        """Hand the worker copies of `breakpoints`; it checks them after every step of a run."""
        self.worker.breakpoints = [dataclasses.replace(b) for b in breakpoints]

    def apply_remedy(self, name: str, *args) -> bool:
        """Queue remedy `name` for between steps; False when training is busy (running or paused)."""
        return self.apply_remedies([(name, tuple(args))])

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

    def rewind(self, step: int) -> bool:
        """Go back to the end of `step` and train on from there as a new branch; False while busy or running.

        `rewound` answers once the training side is there, and `view` then ends at `step`."""
        latest = self.view.history.latest
        if not self.has_model or self.busy or latest is None or not 0 <= step <= latest.step:
            return False
        self.busy = True
        self._rewind.emit(step)
        return True

    def inspect_units(self, layer: str) -> None:
        """Ask for the dead units of `layer` (answered by units_inspected); skipped while training."""
        if self.has_model and not self.busy:
            self._inspect.emit(layer)

    def shutdown(self, timeout_ms: int = 5000) -> None:
        """Stop any run or paused step, release the Stepper on its own thread, end the thread.

        An experiment process is killed at once instead: nothing in it needs saving (every
        recorded step is already in the window), and its user code may never return.
        """
        if self.child_process:
            self.worker.kill_all()
            self._on_died(None)
            return
        if not self.thread.isRunning():
            return
        self.stop()
        self._close.emit()  # the worker releases the Stepper, then ends its thread
        if not self.thread.wait(timeout_ms):
            self.thread.terminate()  # a user step that never returns; nothing else can stop it
            self.thread.wait()

    # --- answers, on the GUI thread ---
    def _resume(self, mode: str) -> None:
        self.paused_at = None
        self.worker.gate.resume(mode)

    def _end_stepping(self) -> None:
        self.paused_at = None
        self.stepping = False

    def _idle_unless_running(self) -> None:
        if not self.running:
            self.busy = False

    @Slot(object, object)
    def _on_loaded(self, request: LoadRequest, run_path: Path | None) -> None:
        self.request = request
        self.run_path = run_path
        self.pending = None
        self.has_model = True
        self.busy = False
        self._end_stepping()
        self.view = RunView(Config().history_steps)
        self.loaded.emit(request)

    @Slot(object)
    def _on_load_failed(self, error: UserCodeError) -> None:
        self.pending = None
        self.busy = False
        self.load_failed.emit(error)

    @Slot(object)
    def _on_failed(self, error: UserCodeError) -> None:
        self.busy = self.running  # a failed run still reports run_finished
        self._end_stepping()
        self.failed.emit(error)

    @Slot(object)
    def _on_event(self, event) -> None:
        self.view.apply(event)
        if isinstance(event, StepRecorded):
            self._end_stepping()
            self._idle_unless_running()
            self.stepped.emit(event.record.step)
        elif isinstance(event, Validated):
            self._idle_unless_running()
            self.validated.emit(event.step, event.metrics)
        elif isinstance(event, Intervened):
            self._idle_unless_running()
            self.remedy_applied.emit(event.step, event.label)
        elif isinstance(event, Rewound):
            self._idle_unless_running()
            self.rewound.emit(event.step, event.branch)

    @Slot(str)
    def _on_remedy_failed(self, why: str) -> None:
        self._idle_unless_running()
        self.remedy_failed.emit(why)

    @Slot(int)
    def _on_run_started(self, total: int) -> None:
        self.running = True
        self.run_started.emit(total)

    @Slot(str)
    def _on_run_finished(self, how: str) -> None:
        self.running = False
        self.busy = False
        self.run_finished.emit(how)

    @Slot()
    def _on_step_aborted(self) -> None:
        self._end_stepping()
        self._idle_unless_running()
        self.step_aborted.emit()

    @Slot(object)
    def _on_paused(self, event: PhaseEvent) -> None:
        if self.stepping:
            self.paused_at = event
            self.paused.emit(event)

    @Slot(object)
    def _on_died(self, error: UserCodeError | None) -> None:
        """The experiment process is gone: nothing is loaded; what it recorded stays in `view`; Reset reloads."""
        was_running = self.running
        self.has_model = self.running = self.busy = False
        self.pending = None
        self._end_stepping()
        if error is not None:
            self.failed.emit(error)
            if was_running:
                self.run_finished.emit("failed")

    @Slot(object)
    def _on_breakpoint_hit(self, hit: Hit) -> None:
        self.breakpoint_hit.emit(hit)
