"""The window's one handle on the training side: commands out, answers in, and the run the window draws.

Training runs in an experiment process of its own (process_client.py): user
code never runs in the window's process, so a step that hangs, exits or
crashes leaves the window alive. Everything the window asks of training goes
through `TrainingController`, and everything training answers comes back as
one of its signals, on the GUI thread, once the bookkeeping (busy, running,
paused) is up to date.

What the window draws is read from the run file the experiment process
records, by the same reader a recording or a followed run uses
(engine/runs/playback.py): the child says a step is done once it is in the
file, the client reads what the file gained (off the GUI thread), and the
controller appends it to `view` and announces it. Only control answers
(paused where, failed, finished, the state asked for) come over the channel.
So live, replay and follow cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from bpviz.engine.config import Config
from bpviz.engine.runs.errors import RunFileError
from bpviz.engine.runs.playback import News
from bpviz.engine.session.breakpoints import Breakpoint, Hit
from bpviz.engine.session.events import RunView
from bpviz.engine.session.protocol import LoadRequest
from bpviz.engine.session.step_gate import INTO, OUT, OVER, PhaseEvent
from bpviz.engine.user_error import UserCodeError
from bpviz.gui.training.process_client import ProcessClient


class TrainingController(QObject):
    """Sends commands to the experiment process; knows whether a run or a paused step is going; owns `view`."""

    # answers, emitted on the GUI thread once the bookkeeping and `view` are up to date
    loaded = Signal(object)  # LoadRequest; `view` is a fresh, empty RunView of its run file
    load_failed = Signal(object)  # UserCodeError; the previous model (if any) stays
    failed = Signal(object)  # UserCodeError from a step, a validation or a remedy, or the process's death
    stepped = Signal(int)  # `view` holds the run file's steps up to this one (the latest of those announced)
    validated = Signal(int, object)  # step, metrics (in `view`)
    remedy_applied = Signal(int, str)  # first step it affects, label (marked in `view`)
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
    state_reported = Signal(object)  # dict: the answer to `query_state` (see SessionDriver.state)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.view = RunView(Config().history_steps)
        self.request: LoadRequest | None = None  # what the current model was loaded from
        self.run_path: Path | None = None  # the run file its steps are recorded into
        self.pending: LoadRequest | None = None  # a load on its way
        self.failed_request: LoadRequest | None = None  # the latest load, when it failed (or was stopped)
        self._run_id = 0
        self._announced = -1  # the latest step `stepped` announced
        self.has_model = False
        self.validates = False  # the open experiment has validation data: Validate has something to run
        self.running = False
        self.busy = False  # a command is on its way or in progress
        self.paused_at: PhaseEvent | None = None  # where the gated step is blocked now
        self.stepping = False  # a gated step is in progress (paused or between two pauses)
        # How a step's news goes into `view`: at once here; the window has it wait for a redraw half done
        # (RedrawClock.between_redraws), so that every part of one redraw shows the same step. Any other answer
        # first lets in what waits (`flush_news`): answers stay in the order they came, and a "run finished" or
        # a breakpoint never finds the view short of the steps that came before it.
        self.between_redraws: Callable[[Callable[[], None]], None] = lambda apply: apply()
        self.flush_news: Callable[[], None] = lambda: None

        self.client = c = ProcessClient(self)
        for answer, slot in (
            (c.loaded, self._on_loaded),
            (c.load_failed, self._on_load_failed),
            (c.failed, self._on_failed),
            (c.stepped, self._on_stepped),
            (c.validated, self._on_validated),
            (c.intervened, self._on_intervened),
            (c.rewound, self._on_rewound),
            (c.remedy_failed, self._on_remedy_failed),
            (c.run_started, self._on_run_started),
            (c.progress, self.progress),
            (c.run_finished, self._on_run_finished),
            (c.step_aborted, self._on_step_aborted),
            (c.paused, self._on_paused),
            (c.breakpoint_hit, self._on_breakpoint_hit),
            (c.graph_changed, self.graph_changed),
            (c.units_inspected, self.units_inspected),
            (c.hyperparameters, self.hyperparameters),
            (c.state, self.state_reported),
            (c.died, self._on_died),
        ):
            # the client emits on the GUI thread already. A step waits for the redraw in progress (stepped holds
            # it); progress, after every step of a Run, only counts, so neither lets held steps in half-way: that
            # made every part of one frame show another step during a fast Run
            answer.connect(slot if answer in (c.stepped, c.progress) else self._after_news(slot))

    def _after_news(self, slot) -> Callable:
        """`slot` (a method, or a signal of ours forwarding the answer), run once the news before it is in."""
        target = slot.emit if hasattr(slot, "emit") else slot

        def answered(*args) -> None:
            self.flush_news()
            target(*args)

        return answered

    # --- commands ---
    def load(self, request: LoadRequest) -> None:
        """Load `request` in a fresh experiment process (replacing any model); `loaded` or `load_failed` answers.

        The run is always recorded, since the window reads what it shows from the run file: into a
        temporary folder when the request names none."""
        if request.record is None:
            request = dataclasses.replace(request, record=Path(tempfile.mkdtemp(prefix="bpviz-run-")))
        self.stop()
        self.pending = request
        self.busy = True
        self.client.load(request)

    @property
    def reload_target(self) -> LoadRequest | None:
        """What Reset (Ctrl+R) loads: the load on its way (started again), else the file that failed to load (the
        user may have fixed it), else the model's own file with the same seed; None when nothing was ever opened."""
        return self.pending or self.failed_request or self.request

    def end_process(self) -> bool:
        """Stop: kill the experiment process now, the one loading a file (the open model stays) or else the one
        training; `load_failed` or `failed` says so once it is gone. False when no load or command is going."""
        if self.pending is None and not (self.has_model and self.busy):
            return False
        return self.client.end()

    def step(self) -> None:
        """F10 (Step Over): a whole step; when paused mid-step, finish that step."""
        if self.paused_at is not None:
            self._resume(OVER)
        elif self.has_model and not self.running and not self.stepping:
            self.busy = True
            self.client.send("step")

    def step_into(self) -> None:
        """F11: start a step paused at its first layer, or go on to the next layer of the paused one."""
        if self.paused_at is not None:
            self._resume(INTO)
        elif self.has_model and not self.busy:
            self.busy = self.stepping = True
            self._run_id += 1
            self.client.send("step_into", INTO, self._run_id)

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
            self.running = True  # set now, not when the child answers, so a second click cannot queue a second run
            self.busy = True
            self._run_id += 1
            self.client.send("run", total, self._run_id)

    def stop(self) -> None:
        """Pause a run after its step, and stop a paused (or about to pause) step where it is.

        The engine rolls back a step stopped before its update and completes one stopped at
        the update pause (its weights have changed), so model and history always agree.
        A step that does not answer within the grace period ends with its process.
        """
        self.client.request_stop(self._run_id)
        self.client.abort()
        if self.busy:
            self.client.end_unless_answered(lambda: not self.busy)

    def validate(self) -> None:
        if self.has_model and self.validates and not self.running:
            self.busy = True
            self.client.send("validate")

    def set_breakpoints(self, breakpoints: list[Breakpoint]) -> None:
        """Hand the child copies of `breakpoints`; it checks them after every step of a run."""
        self.client.set_breakpoints([dataclasses.replace(b) for b in breakpoints])

    def apply_remedy(self, name: str, *args) -> bool:
        """Queue remedy `name` for between steps; False when training is busy (running or paused)."""
        return self.apply_remedies([(name, tuple(args))])

    def apply_remedies(self, changes: list[tuple[str, tuple]]) -> bool:
        """Queue several remedies, applied in order (the hyperparameters panel's Apply)."""
        if not self.has_model or self.busy or not changes:
            return False
        self.busy = True
        for name, args in changes:
            self.client.send("apply_remedy", name, tuple(args))
        return True

    def undo_remedy(self) -> bool:
        if not self.has_model or self.busy:
            return False
        self.busy = True
        self.client.send("undo_remedy")
        return True

    def rewind(self, step: int) -> bool:
        """Go back to the end of `step`, before the latest, and train on from there as a new branch; False while busy
        or running, and for the latest step (going back to where the training stands changes nothing).

        `rewound` answers once the training side is there, and `view` then ends at `step`."""
        latest = self.view.history.latest
        if not self.has_model or self.busy or latest is None or not 0 <= step < latest.step:
            return False
        self.busy = True
        self.client.send("rewind", step)
        return True

    def inspect_units(self, layer: str) -> None:
        """Ask for the dead units of `layer` (answered by units_inspected); skipped while training."""
        if self.has_model and not self.busy:
            self.client.send("inspect_units", layer)

    def query_state(self, tensors: bool = False) -> None:
        """Ask the experiment process what it holds now (answered by `state_reported`), even mid-step."""
        self.client.query_state(tensors)

    def shutdown(self) -> None:
        """Quit: the experiment process is killed at once. Nothing in it needs saving (every step it
        finished is in the run file), and its user code may never return."""
        self.client.kill_all()
        self._on_died(None, None)

    # --- answers, on the GUI thread ---
    def _resume(self, mode: str) -> None:
        self.paused_at = None
        self.client.resume(mode)

    def _end_stepping(self) -> None:
        self.paused_at = None
        self.stepping = False

    def _idle_unless_running(self) -> None:
        if not self.running:
            self.busy = False

    def _take_in(self, news: News | RunFileError | None, hold: bool = False) -> None:
        """Append what the run file gained to `view` (new steps; validations, marks and findings); announce it."""
        if isinstance(news, RunFileError):  # the file went bad under us (told once), after the steps before it
            self.flush_news()
            self.failed.emit(news)
            return
        view = self.view

        def apply() -> None:
            if news is not None:
                news.apply(view)
            latest = view.history.latest
            if view is self.view and latest is not None and latest.step > self._announced:
                self._announced = latest.step
                self.stepped.emit(latest.step)

        if hold:
            self.between_redraws(apply)
        else:
            apply()

    def _on_loaded(self, request: LoadRequest, run_path: Path, validates: bool) -> None:
        self.request = request
        self.run_path = run_path
        self.validates = validates
        self.pending = self.failed_request = None
        self.has_model = True
        self.busy = False
        self._announced = -1
        self._end_stepping()
        self.view = RunView(Config().history_steps)
        self.loaded.emit(request)

    def _on_load_failed(self, error: UserCodeError) -> None:
        failed, self.pending = self.pending, None
        # Weights that did not fit the open model leave it open: Reset still rebuilds it, where Reload would try
        # the same weights again. Another file that failed is what Reload loads once it is fixed.
        into_open = self.has_model and failed is not None and failed.weights is not None
        self.failed_request = None if into_open and failed.path == self.request.path else failed
        self.busy = False
        self.load_failed.emit(error)

    def _on_failed(self, error: UserCodeError) -> None:
        self.busy = self.running  # a failed run still reports run_finished
        self._end_stepping()
        self.failed.emit(error)

    def _on_stepped(self, _step: int, news: News | RunFileError | None) -> None:
        self._end_stepping()
        self._idle_unless_running()
        self._take_in(news, hold=True)

    def _on_validated(self, step: int, metrics: dict, news: News | RunFileError | None) -> None:
        self._take_in(news)
        self._idle_unless_running()
        self.validated.emit(step, metrics)

    def _on_intervened(self, step: int, label: str, news: News | RunFileError | None) -> None:
        self._take_in(news)
        self._idle_unless_running()
        self.remedy_applied.emit(step, label)

    def _on_rewound(self, step: int, branch: int, view: RunView | RunFileError | None) -> None:
        """The run is back at the end of `step`, training on as `branch`: `view` is that branch's line, read
        from the run file up to `step`."""
        if isinstance(view, RunView):
            self.view = view
            self._announced = step
        else:
            self._take_in(view)
        self._idle_unless_running()
        self.rewound.emit(step, branch)

    def _on_remedy_failed(self, why: str) -> None:
        self._idle_unless_running()
        self.remedy_failed.emit(why)

    def _on_run_started(self, total: int) -> None:
        self.running = True
        self.run_started.emit(total)

    def _on_run_finished(self, how: str) -> None:
        self.running = False
        self.busy = False
        self.run_finished.emit(how)

    def _on_step_aborted(self) -> None:
        self._end_stepping()
        self._idle_unless_running()
        self.step_aborted.emit()

    def _on_paused(self, event: PhaseEvent) -> None:
        if self.stepping:
            self.paused_at = event
            self.paused.emit(event)

    def _on_died(self, error: UserCodeError | None, news: News | RunFileError | None) -> None:
        """The experiment process is gone: nothing is loaded; every step it committed is in `view`; Reset reloads."""
        was_running = self.running
        self.has_model = self.running = self.busy = self.validates = False
        self.pending = None
        self._end_stepping()
        self._take_in(news)
        if error is not None:
            self.failed.emit(error)
            if was_running:
                self.run_finished.emit("failed")

    def _on_breakpoint_hit(self, hit: Hit) -> None:
        self.breakpoint_hit.emit(hit)
