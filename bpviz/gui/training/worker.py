"""Training off the GUI thread: one worker QObject in one QThread owns the Stepper.

The GUI talks to the worker only through queued signals (commands) and one
thread-safe flag (stop a run between steps); the worker answers with signals
carrying plain data (StepRecord, copies of the findings). The Stepper, the
model and the user's code run on the worker thread only, so a slow or
hanging step never freezes the window.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QThread, Signal, Slot

from bpviz.engine.diagnosis.finding import Finding
from bpviz.engine.session.step_gate import StepAborted
from bpviz.engine.user_error import UserCodeError, describe_exception, full_traceback


@dataclass(frozen=True)
class LoadRequest:
    """What to load and how: kept so Reset can rebuild the same model with the same seed."""

    path: Path
    trust: bool = False
    weights: str | None = None
    input_shape: tuple[int, ...] | None = None
    seed: int = 0


def copy_findings(findings: list[Finding]) -> list[Finding]:
    """Snapshots of the findings: the Stepper keeps updating its own objects on the worker thread."""
    return [dataclasses.replace(f, remedies=list(f.remedies)) for f in findings]


def internal_error(what: str, exc: BaseException) -> UserCodeError:
    """A failure inside bpviz itself, dressed for the same error panel as a user's failure."""
    return UserCodeError(f"{what} (an error inside bpviz; please report it)", describe_exception(exc), details=full_traceback(exc))


class TrainingWorker(QObject):
    """Lives on the training thread; every slot runs there."""

    loaded = Signal(object)  # LoadRequest
    stepped = Signal(object, object)  # StepRecord, list[Finding] (snapshots)
    validated = Signal(int, object, object)  # step, metrics dict, list[Finding] (validation can raise mode findings)
    failed = Signal(object)  # UserCodeError from a step or a validation
    load_failed = Signal(object)  # UserCodeError from loading; the previous model (if any) stays
    run_started = Signal(int)  # total steps, 0 for "until paused"
    progress = Signal(int, int)  # done, total
    run_finished = Signal(str)  # "done" | "stopped" | "failed" | "breakpoint"
    step_aborted = Signal()  # a gated step was stopped mid-way; model and history are as before it
    closed = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.stepper = None
        # Runs are numbered by the controller; a run stops once this reaches its number. A plain int is
        # enough across threads (assignment is atomic) and, unlike an Event, a stop sent before the run
        # even started is not lost.
        self._stop_upto = 0

    def request_stop(self, upto: int) -> None:
        """Thread-safe: runs numbered up to `upto` end after the step in progress."""
        self._stop_upto = max(self._stop_upto, upto)

    @Slot(object)
    def load(self, request: LoadRequest) -> None:
        """Build the experiment and a fresh Stepper, replacing the current one once the new one works."""
        from bpviz.engine.load.experiment import load_experiment
        from bpviz.engine.session.stepper import Stepper

        try:
            experiment = load_experiment(
                request.path,
                trust=request.trust,
                weights=request.weights,
                input_shape=request.input_shape,
                seed=request.seed,
            )
            stepper = Stepper(experiment, level="full")  # stepping by hand: every statistic of every step
        except UserCodeError as exc:
            self.load_failed.emit(exc)
            return
        except Exception as exc:  # noqa: BLE001 - shown in the window, never crashes it
            self.load_failed.emit(internal_error(f"Loading {request.path.name} failed", exc))
            return
        self._close_stepper()  # only now: a file that fails to load leaves the current model as it was
        self.stepper = stepper
        self.loaded.emit(request)
        self._after_load()

    def _after_load(self) -> None:
        """Runs on the training thread once a newly loaded model is in place; a subclass adds to it here.

        Not by overriding the `load` slot: PySide6 runs an overridden slot in the
        thread that emitted the signal, so the model would be built on the GUI thread.
        """

    @Slot()
    def step(self) -> None:
        """One training step."""
        self._step_once()

    @Slot(int, int)
    def run(self, total: int, run_id: int) -> None:
        """`total` steps, or until stopped when `total` <= 0; progress after every step."""
        self.run_started.emit(max(total, 0))
        done = 0
        while self._stop_upto < run_id and (total <= 0 or done < total):
            if not self._step_once():
                self.run_finished.emit("failed")
                return
            done += 1
            self.progress.emit(done, max(total, 0))
            if self._stop_after_step():
                self.run_finished.emit("breakpoint")
                return
            # Hand the interpreter lock to the GUI thread between steps so it never waits a whole switch interval.
            time.sleep(0)
        self.run_finished.emit("done" if 0 < total <= done else "stopped")

    @Slot()
    def validate(self) -> None:
        """Run the experiment's validation and report its metrics."""
        if self.stepper is None:
            return
        try:
            before = len(self.stepper.history.validation)
            metrics = self.stepper.validate()
        except UserCodeError as exc:
            self.failed.emit(exc)
            return
        except Exception as exc:  # noqa: BLE001
            self.failed.emit(internal_error("Validation failed", exc))
            return
        validation = self.stepper.history.validation
        if len(validation) > before:
            step, metrics = validation[-1]
        else:
            step = self.stepper.step_index - 1
        self.validated.emit(int(step), dict(metrics), copy_findings(self.stepper.findings))

    @Slot()
    def close(self) -> None:
        """Release the Stepper (its hooks) before the thread ends."""
        self._close_stepper()
        self.closed.emit()

    def _stop_after_step(self) -> bool:
        """Whether a run ends after the step just made (a breakpoint); subclasses decide."""
        return False

    def _step_once(self, gate=None) -> bool:
        """One step (paused where `gate` asks, when given); False when it failed or was stopped."""
        if self.stepper is None:
            return False
        try:
            record = self.stepper.step(gate)
            findings = copy_findings(self.stepper.findings)
        except StepAborted:
            self.step_aborted.emit()
            return False
        except UserCodeError as exc:
            self.failed.emit(exc)
            return False
        except Exception as exc:  # noqa: BLE001
            self.failed.emit(internal_error(f"Step {self.stepper.step_index} failed", exc))
            return False
        self.stepped.emit(record, findings)
        return True

    def _close_stepper(self) -> None:
        if self.stepper is not None:
            try:
                self.stepper.close()
            except Exception:  # noqa: BLE001 - closing must not stop a reload
                pass
            self.stepper = None


def leave_a_core_for_the_window() -> int:
    """Cap torch's intra-op threads one below the core count, so the window's thread always finds a free core.

    With every core in torch's pool, the GUI thread preempts one of the pool's
    threads and every parallel op waits at its barrier for it: training slows
    several-fold and the window stutters. Returns the thread count in use.
    """
    import os

    import torch

    cores = os.cpu_count() or 1
    if cores > 1 and torch.get_num_threads() >= cores:
        torch.set_num_threads(cores - 1)
    return torch.get_num_threads()


class TrainingController(QObject):
    """The GUI thread's handle on the worker: sends commands, knows whether a run is going."""

    # commands, delivered to the worker thread through queued connections
    _load = Signal(object)
    _step = Signal()
    _run = Signal(int, int)
    _validate = Signal()
    _close = Signal()

    worker_class = TrainingWorker  # a subclass adds commands (see bpviz.gui.training.step_into)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        leave_a_core_for_the_window()
        self.thread = QThread()
        self.thread.setObjectName("bpviz-training")
        self.worker = self.worker_class()
        self.worker.moveToThread(self.thread)
        self._load.connect(self.worker.load)
        self._step.connect(self.worker.step)
        self._run.connect(self.worker.run)
        self._validate.connect(self.worker.validate)
        self._close.connect(self.worker.close)
        self.worker.run_started.connect(self._on_run_started)
        self.worker.run_finished.connect(self._on_run_finished)
        self.worker.loaded.connect(self._on_loaded)
        self.worker.failed.connect(self._on_failed)
        self.worker.load_failed.connect(self._on_load_failed)
        self.worker.stepped.connect(self._on_idle)
        self.worker.validated.connect(self._on_idle)
        self.request: LoadRequest | None = None  # what the current model was loaded from
        self.pending: LoadRequest | None = None  # a load on its way
        self._run_id = 0
        self.has_model = False
        self.running = False
        self.busy = False  # a command is on its way or in progress
        self.thread.start()

    # --- commands ---
    def load(self, request: LoadRequest) -> None:
        """Load `request` on the worker (replacing any model); `worker.loaded` or `worker.failed` answers."""
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
        if self.has_model and not self.running:
            self.busy = True
            self._step.emit()

    def run(self, total: int = 0) -> None:
        """Train `total` steps (0: until `stop`)."""
        if self.has_model and not self.running:
            self.running = True  # set now, not when the worker answers, so a second click cannot queue a second run
            self.busy = True
            self._run_id += 1
            self._run.emit(total, self._run_id)

    def stop(self) -> None:
        """Pause/cancel: the run ends after the step in progress."""
        self.worker.request_stop(self._run_id)

    def validate(self) -> None:
        if self.has_model and not self.running:
            self.busy = True
            self._validate.emit()

    def shutdown(self, timeout_ms: int = 5000) -> None:
        """Stop any run, release the Stepper on its own thread, end the thread."""
        if not self.thread.isRunning():
            return
        self.stop()
        self._close.emit()
        self.thread.quit()
        if not self.thread.wait(timeout_ms):
            self.thread.terminate()  # a user step that never returns; nothing else can stop it
            self.thread.wait()

    # --- bookkeeping, on the GUI thread ---
    def _on_run_started(self, _total: int) -> None:
        self.running = True

    def _on_run_finished(self, _how: str) -> None:
        self.running = False
        self.busy = False

    def _on_loaded(self, request: LoadRequest) -> None:
        self.request = request
        self.pending = None
        self.has_model = True
        self.busy = False

    def _on_failed(self, _error: UserCodeError) -> None:
        self.busy = self.running  # a failed run still reports run_finished

    def _on_load_failed(self, _error: UserCodeError) -> None:
        self.pending = None
        self.busy = False

    def _on_idle(self, *_args) -> None:
        if not self.running:
            self.busy = False
