"""The training side's command handler: one Stepper, driven by commands, answering with plain messages.

It makes no decision of its own (the Stepper makes them all) and knows no
transport: every answer goes through `emit(name, *args)`, which the
experiment's process (engine/session/child.py) turns into messages on its
control channel. The names are listed in ANSWERS. What a step recorded is
not among them: the Stepper writes it to the run file, and the window reads
it from there once "stepped" says it is in, the same way it reads a recording.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bpviz.engine.session.breakpoints import Breakpoint
from bpviz.engine.session.position import Position
from bpviz.engine.session.protocol import LoadRequest
from bpviz.engine.session.step_gate import Gate, StepAborted
from bpviz.engine.user_error import UserCodeError, describe_exception, full_traceback

ANSWERS = (
    "loaded",  # LoadRequest, the run file its steps are recorded into, whether it has validation data
    "stepped",  # step: a step is done and in the run file (the window reads its record from there)
    "validated",  # step, metrics: a validation ran after `step` and is in the run file
    "intervened",  # step, label: a remedy (or its undo) acts from `step` on and is in the run file
    "rewound",  # step, branch: the run went back to the end of `step` and trains on as `branch` (in the run file)
    "failed",  # UserCodeError from a step or a validation
    "load_failed",  # UserCodeError from loading; the previous model (if any) stays
    "run_started",  # total steps, 0 for "until paused"
    "progress",  # done, total
    "run_finished",  # "done" | "stopped" | "failed" | "breakpoint"
    "step_aborted",  # a gated step was stopped mid-way; model and history are as before it
    "paused",  # PhaseEvent: the step is blocked in a hook until the gate is resumed or aborted
    "breakpoint_hit",  # breakpoints.Hit: the run stopped after the step it names
    "remedy_failed",  # why a remedy could not be applied, for the user
    "graph_changed",  # layer_graph.LayerGraph, whenever the engine recorded a new one
    "units_inspected",  # layer, step, list[unit_forensics.DeadUnit]
    "hyperparameters",  # {"lr", "momentum", "weight_decay", "clip"}: values now (None: not there)
    "state",  # the training side's state (see SessionDriver.state), answering a "state" query
)


def internal_error(what: str, exc: BaseException) -> UserCodeError:
    """A failure inside bpviz itself, dressed for the same error panel as a user's failure."""
    return UserCodeError(
        f"{what} (an error inside bpviz; please report it)", describe_exception(exc), details=full_traceback(exc)
    )


class SessionDriver:
    """Owns the Stepper; every method is one command and runs on the experiment process's main thread (but
    `state` and `request_stop`, obeyed at once by its listening thread)."""

    def __init__(self, emit: Callable[..., None], position: Position | None = None) -> None:
        """`emit(name, *args)` answers; `position`, when given, is kept up to date with the step, phase and layer."""
        self.emit = emit
        self.position = position
        self.stepper = None
        self.model = None  # the latest experiment's model, kept after close: its hooks are asked about
        # Runs are numbered by the window; a run stops once this reaches its number. A plain int is
        # enough across threads (assignment is atomic) and, unlike an Event, a stop sent before the run
        # even started is not lost.
        self._stop_upto = 0
        self.gate = Gate(on_pause=lambda event: self.emit("paused", event))
        self.breakpoints: list[Breakpoint] = []  # replaced whole by another thread, never changed in place
        self._graph = None
        self._told_stopped = False  # the user was told the run file stopped taking steps

    def request_stop(self, upto: int) -> None:
        """Thread-safe: runs numbered up to `upto` end after the step in progress."""
        self._stop_upto = max(self._stop_upto, upto)

    def load(self, request: LoadRequest) -> None:
        """Build the experiment and a fresh Stepper, replacing the current one once the new one works."""
        from bpviz.engine.load.experiment import load_experiment
        from bpviz.engine.session.stepper import Stepper

        self._at(0, "build()")
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
            self.emit("load_failed", exc)
            return
        except Exception as exc:  # noqa: BLE001 - shown in the window, never crashes it
            self.emit("load_failed", internal_error(f"Loading {request.path.name} failed", exc))
            return
        self._close_stepper()  # only now: a file that fails to load leaves the current model as it was
        self.stepper = stepper
        self.model = experiment.model
        self._graph = None
        self._told_stopped = False
        self._keep_position(stepper)
        self._at(0, None)
        self.emit("loaded", request, stepper.watcher.recorder_path, experiment.val_data is not None)
        self.read_hyperparameters()

    def _at(self, step: int, what: str | None) -> None:
        """The process is doing `what` (build(), validation; None: waiting between steps), for the position."""
        if self.position is not None:
            self.position.phase(step, what)

    def _keep_position(self, stepper) -> None:
        """The Stepper and its hooks write where they are into the shared position (read after a crash)."""
        if self.position is not None:
            stepper.phase_reporter = self.position.phase
            stepper.watcher.probe.position = self.position.layer

    def step(self) -> None:
        """One training step."""
        self._step_once()

    def step_into(self, mode: str, step_id: int) -> None:
        """One step that pauses where `mode` says (INTO: at every layer); `step_id` lets a stop sent earlier win."""
        if self.stepper is None:
            self.emit("step_aborted")
            return
        self.gate.arm(mode)
        # A stop requested before this command arrived must not be forgotten by arm(): check after arming.
        if self._stop_upto >= step_id:
            self.gate.finish()
            self.emit("step_aborted")
            return
        self._step_once(self.gate)

    def run(self, total: int, run_id: int) -> None:
        """`total` steps, or until stopped when `total` <= 0; progress after every step, a breakpoint ends it."""
        self.emit("run_started", max(total, 0))
        done = 0
        while self._stop_upto < run_id and (total <= 0 or done < total):
            if not self._step_once():
                self.emit("run_finished", "failed")
                return
            done += 1
            self.emit("progress", done, max(total, 0))
            hit = self.stepper.breakpoint_hit(self.breakpoints)
            if hit is not None:
                self.emit("breakpoint_hit", hit)
                self.emit("run_finished", "breakpoint")
                return
            # Hand the interpreter lock to other threads between steps so none waits a whole switch interval.
            time.sleep(0)
        self.emit("run_finished", "done" if 0 < total <= done else "stopped")

    def validate(self) -> None:
        """Run the experiment's validation and report its metrics."""
        if self.stepper is None:
            return
        self._at(self.stepper.step_index, "validation")
        try:
            validated = self.stepper.validate_event()
        except UserCodeError as exc:
            self.emit("failed", exc)
            return
        except Exception as exc:  # noqa: BLE001
            self.emit("failed", internal_error("Validation failed", exc))
            return
        finally:
            self._at(self.stepper.step_index, None)
        self._written()
        self.emit("validated", validated.step, validated.metrics)

    def apply_remedy(self, name: str, args: tuple) -> None:
        """Apply remedy `name` (see engine.session.remedies.REMEDIES) between steps."""
        if self.stepper is None:
            return
        try:
            intervened = self.stepper.remedy_event(name, tuple(args))
        except (ValueError, KeyError) as exc:
            self.emit("remedy_failed", str(exc).strip("'\""))
            return
        except Exception as exc:  # noqa: BLE001 - shown in the window, never crashes it
            self.emit("failed", internal_error(f"Applying {name} failed", exc))
            self.emit("remedy_failed", f"{name} failed: {exc}")
            return
        self._intervened(intervened)

    def undo_remedy(self) -> None:
        """Take back the latest remedy still applied."""
        if self.stepper is None:
            return
        try:
            intervened = self.stepper.undo_event()
        except Exception as exc:  # noqa: BLE001
            self.emit("remedy_failed", f"Undo failed: {exc}")
            return
        if intervened is None:
            self.emit("remedy_failed", "Nothing to undo: no remedy is applied.")
            return
        self._intervened(intervened)

    def _intervened(self, intervened) -> None:
        """A remedy's mark goes into the run file at once (not with the next step), then the window is told."""
        recorder = self.stepper.watcher.recorder
        if recorder is not None:
            recorder.interventions_now()
        self._written()
        self.emit("intervened", intervened.step, intervened.label)
        self.read_hyperparameters()

    def rewind(self, step: int) -> None:
        """Go back to the end of `step` and train on from there as a new branch of the run (see Stepper.rewind)."""
        if self.stepper is None:
            return
        branch = self.stepper.branch
        try:
            self.stepper.rewind(step)
        except Exception as exc:  # noqa: BLE001 - shown in the window, never crashes it
            if isinstance(exc, UserCodeError):  # replaying the steps runs user code again
                self.emit("failed", exc)
            elif isinstance(exc, (ValueError, LookupError)):
                self.emit("remedy_failed", str(exc))
            else:
                self.emit("failed", internal_error(f"Rewinding to step {step} failed", exc))
            if self.stepper.branch != branch:  # a replayed step failed: the new branch starts before it
                self._rewound(self.stepper.step_index - 1)
            return
        self._rewound(step)
        self.read_hyperparameters()

    def _rewound(self, step: int) -> None:
        self._written()
        self.emit("rewound", step, self.stepper.branch)

    def _written(self) -> None:
        """Wait until the run file holds everything submitted, before answering: the window reads it from there.

        A step is done once it is in the file, so an experiment process that dies in the next step loses
        nothing the window was told about. The wait costs little: the writer's encoding needs the
        interpreter lock the step would hold anyway, and WAL commits do not sync the disk."""
        recorder = self.stepper.watcher.recorder
        if recorder is not None:
            recorder.writer.flush()

    def _tell_if_recording_stopped(self) -> None:
        """Once: the run file refused a write (disk full, read-only), so the window, reading it, sees no new step."""
        recorder = self.stepper.watcher.recorder
        if recorder is None or recorder.writer.failure is None or self._told_stopped:
            return
        self._told_stopped = True
        step, why = recorder.writer.failure
        self.emit(
            "failed",
            UserCodeError(
                f"Recording stopped at step {step}: the window shows no later step",
                f"{why}; training goes on, and every earlier step is in the run file",
                where=str(recorder.path),
            ),
        )

    def inspect_units(self, layer: str) -> None:
        """The dead units of `layer` at the latest step, with the evidence about their death."""
        stepper = self.stepper
        latest = stepper.history.latest if stepper is not None else None
        if latest is not None:
            self.emit("units_inspected", layer, latest.step, stepper.dead_units(layer))

    def read_hyperparameters(self) -> None:
        """Report the optimizer's learning rate, momentum, weight decay and the gradient clipping now in force."""
        if self.stepper is not None:
            self.emit("hyperparameters", self.stepper.hyperparameters())

    def state(self, tensors: bool = False) -> None:
        """Answer what the training side holds now, read where it lives (for the window and its tests).

        Obeyed at once, on the listening thread, also while a step is paused or running: the values are
        plain reads (a running step may be between two of them). With `tensors`, copies of the model's
        parameters and buffers too.
        """
        stepper, model = self.stepper, self.model
        hooks = (
            sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())
            if model is not None
            else 0
        )
        state = {
            "loaded": stepper is not None,
            "step_index": stepper.step_index if stepper is not None else None,
            "hyperparameters": stepper.hyperparameters() if stepper is not None else {},
            "breakpoints": list(self.breakpoints),
            "paused_at": self.gate.paused_at,
            "hooks": hooks,
            "run_file": stepper.watcher.recorder_path if stepper is not None else None,
        }
        if tensors and model is not None:
            state["parameters"] = [t.detach().clone() for t in model.parameters()]
            state["buffers"] = [t.detach().clone() for t in model.buffers()]
        self.emit("state", state)

    def close(self) -> None:
        """Release the Stepper (its hooks)."""
        self._close_stepper()

    def _step_once(self, gate: Gate | None = None) -> bool:
        """One step (paused where `gate` asks, when given); False when it failed or was stopped."""
        if self.stepper is None:
            return False
        try:
            record = self.stepper.step(gate)
        except StepAborted:
            self.emit("step_aborted")
            return False
        except UserCodeError as exc:
            self.emit("failed", exc)
            return False
        except Exception as exc:  # noqa: BLE001
            self.emit("failed", internal_error(f"Step {self.stepper.step_index} failed", exc))
            return False
        finally:
            self._at(self.stepper.step_index, None)  # the step ended, one way or another: between steps again
        self._written()
        self._tell_if_recording_stopped()
        self.emit("stepped", record.step)
        graph = self.stepper.watcher.graph
        if graph is not None and graph is not self._graph:
            self._graph = graph
            self.emit("graph_changed", graph)
        return True

    def _close_stepper(self) -> None:
        if self.stepper is not None:
            try:
                self.stepper.close()
            except Exception:  # noqa: BLE001 - closing must not stop a reload
                pass
            self.stepper = None
