"""Training off the GUI thread: one worker QObject in one QThread owns the Stepper.

The worker is a thin adapter: every command runs a Stepper method (which
makes every decision) and every answer is a signal carrying plain data:
the engine's run events (see engine/session/events.py), errors, pauses.
Nothing here touches a widget, and nothing in the window connects to these
signals directly: `TrainingController` takes them in on the GUI thread
(a callable connected to a signal of this object would run on the training
thread, and a widget touched from there crashes Qt).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from bpviz.engine.session.breakpoints import Breakpoint
from bpviz.engine.session.step_gate import Gate, StepAborted
from bpviz.engine.user_error import UserCodeError, describe_exception, full_traceback


@dataclass(frozen=True)
class LoadRequest:
    """What to load and how: kept so Reset can rebuild the same model with the same seed."""

    path: Path
    trust: bool = False
    weights: str | None = None
    input_shape: tuple[int, ...] | None = None
    seed: int = 0
    record: Path | None = None  # a run file, or a folder for a new dated one, receiving every step


def internal_error(what: str, exc: BaseException) -> UserCodeError:
    """A failure inside bpviz itself, dressed for the same error panel as a user's failure."""
    return UserCodeError(f"{what} (an error inside bpviz; please report it)", describe_exception(exc),
                         details=full_traceback(exc))


class TrainingWorker(QObject):
    """Lives on the training thread; every slot runs there."""

    loaded = Signal(object)  # LoadRequest
    event = Signal(object)  # a run event: StepRecorded, Validated or Intervened
    failed = Signal(object)  # UserCodeError from a step or a validation
    load_failed = Signal(object)  # UserCodeError from loading; the previous model (if any) stays
    run_started = Signal(int)  # total steps, 0 for "until paused"
    progress = Signal(int, int)  # done, total
    run_finished = Signal(str)  # "done" | "stopped" | "failed" | "breakpoint"
    step_aborted = Signal()  # a gated step was stopped mid-way; model and history are as before it
    paused = Signal(object)  # PhaseEvent: the step is blocked in a hook until the gate is resumed or aborted
    breakpoint_hit = Signal(object)  # breakpoints.Hit: the run stopped after the step it names
    remedy_failed = Signal(str)  # why a remedy could not be applied, for the user
    graph_changed = Signal(object)  # layer_graph.LayerGraph, whenever the engine recorded a new one
    units_inspected = Signal(str, int, object)  # layer, step, list[unit_forensics.DeadUnit]
    hyperparameters = Signal(object)  # {"lr", "momentum", "weight_decay", "clip"}: values now (None: not there)

    def __init__(self) -> None:
        super().__init__()
        self.stepper = None
        # Runs are numbered by the controller; a run stops once this reaches its number. A plain int is
        # enough across threads (assignment is atomic) and, unlike an Event, a stop sent before the run
        # even started is not lost.
        self._stop_upto = 0
        # on_pause runs on the training thread; emitting from there queues the event to the controller.
        self.gate = Gate(on_pause=self.paused.emit)
        self.breakpoints: list[Breakpoint] = []  # replaced whole by the GUI thread, never changed in place
        self._graph = None

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
            # stepping by hand: every statistic of every step, recorded when the request names a run file or folder
            stepper = Stepper(experiment, level="full", record=request.record)
        except UserCodeError as exc:
            self.load_failed.emit(exc)
            return
        except Exception as exc:  # noqa: BLE001 - shown in the window, never crashes it
            self.load_failed.emit(internal_error(f"Loading {request.path.name} failed", exc))
            return
        self._close_stepper()  # only now: a file that fails to load leaves the current model as it was
        self.stepper = stepper
        self._graph = None
        self.loaded.emit(request)
        self.read_hyperparameters()

    @Slot()
    def step(self) -> None:
        """One training step."""
        self._step_once()

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

    @Slot(int, int)
    def run(self, total: int, run_id: int) -> None:
        """`total` steps, or until stopped when `total` <= 0; progress after every step, a breakpoint ends it."""
        self.run_started.emit(max(total, 0))
        done = 0
        while self._stop_upto < run_id and (total <= 0 or done < total):
            if not self._step_once():
                self.run_finished.emit("failed")
                return
            done += 1
            self.progress.emit(done, max(total, 0))
            hit = self.stepper.breakpoint_hit(self.breakpoints)
            if hit is not None:
                self.breakpoint_hit.emit(hit)
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
            self.event.emit(self.stepper.validate_event())
        except UserCodeError as exc:
            self.failed.emit(exc)
        except Exception as exc:  # noqa: BLE001
            self.failed.emit(internal_error("Validation failed", exc))

    @Slot(str, object)
    def apply_remedy(self, name: str, args: tuple) -> None:
        """Apply remedy `name` (see engine.session.remedies.REMEDIES) between steps."""
        if self.stepper is None:
            return
        try:
            intervened = self.stepper.remedy_event(name, tuple(args))
        except (ValueError, KeyError) as exc:
            self.remedy_failed.emit(str(exc).strip("'\""))
            return
        except Exception as exc:  # noqa: BLE001 - shown in the window, never crashes it
            self.failed.emit(internal_error(f"Applying {name} failed", exc))
            self.remedy_failed.emit(f"{name} failed: {exc}")
            return
        self.event.emit(intervened)
        self.read_hyperparameters()

    @Slot()
    def undo_remedy(self) -> None:
        """Take back the latest remedy still applied."""
        if self.stepper is None:
            return
        try:
            intervened = self.stepper.undo_event()
        except Exception as exc:  # noqa: BLE001
            self.remedy_failed.emit(f"Undo failed: {exc}")
            return
        if intervened is None:
            self.remedy_failed.emit("Nothing to undo: no remedy is applied.")
            return
        self.event.emit(intervened)
        self.read_hyperparameters()

    @Slot(str)
    def inspect_units(self, layer: str) -> None:
        """The dead units of `layer` at the latest step, with the evidence about their death."""
        stepper = self.stepper
        latest = stepper.history.latest if stepper is not None else None
        if latest is not None:
            self.units_inspected.emit(layer, latest.step, stepper.dead_units(layer))

    @Slot()
    def read_hyperparameters(self) -> None:
        """Report the optimizer's learning rate, momentum, weight decay and the gradient clipping now in force."""
        if self.stepper is not None:
            self.hyperparameters.emit(self.stepper.hyperparameters())

    @Slot()
    def close(self) -> None:
        """Release the Stepper (its hooks), then end this thread's event loop.

        The loop is ended from here, after the release: a quit() sent from the GUI thread
        can end the loop before this queued command runs, leaving the hooks on the model.
        """
        self._close_stepper()
        self.thread().quit()

    def _step_once(self, gate: Gate | None = None) -> bool:
        """One step (paused where `gate` asks, when given); False when it failed or was stopped."""
        if self.stepper is None:
            return False
        try:
            recorded = self.stepper.step_event(gate)
        except StepAborted:
            self.step_aborted.emit()
            return False
        except UserCodeError as exc:
            self.failed.emit(exc)
            return False
        except Exception as exc:  # noqa: BLE001
            self.failed.emit(internal_error(f"Step {self.stepper.step_index} failed", exc))
            return False
        self.event.emit(recorded)
        graph = self.stepper.watcher.graph
        if graph is not None and graph is not self._graph:
            self._graph = graph
            self.graph_changed.emit(graph)
        return True

    def _close_stepper(self) -> None:
        if self.stepper is not None:
            try:
                self.stepper.close()
            except Exception:  # noqa: BLE001 - closing must not stop a reload
                pass
            self.stepper = None
