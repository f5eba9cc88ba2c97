"""`watch(model)`: the engine attached to a model, fed one `step()` per training step.

The same object serves a user's own training loop and bpviz's own stepper,
so the CLI, the window and a script see identical records and findings.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.amp import GradScaler

from bpviz.engine.config import Config
from bpviz.engine.diagnosis import Diagnosis
from bpviz.engine.diagnosis.finding import Finding
from bpviz.engine.diagnosis.softmax_cross_entropy import loss_applies_softmax_twice
from bpviz.engine.distributed.context import unwrap
from bpviz.engine.distributed.exchange import RankExchange
from bpviz.engine.distributed.recording import recording_path
from bpviz.engine.observe.catalog import LayerCatalog
from bpviz.engine.observe.compiled import EagerWhileWatched, uncompiled
from bpviz.engine.observe.deferred import settle
from bpviz.engine.observe.guard import MeasurementGuard
from bpviz.engine.observe.layer_graph import GraphRecorder, LayerGraph
from bpviz.engine.observe.levels import DetailSchedule
from bpviz.engine.observe.probe import Probe
from bpviz.engine.record.collect import collect
from bpviz.engine.record.cost import StepClock
from bpviz.engine.record.dead_units import DeadUnitTracker, mark_dead_units
from bpviz.engine.record.history import History
from bpviz.engine.record.records import ForwardPass, StepRecord
from bpviz.engine.report.data import build_report, cost_entry
from bpviz.engine.runs.recorder import Recorder


class Watcher:
    """Observes a model's layers and turns each training step into a StepRecord and findings."""

    def __init__(
        self,
        model: nn.Module,
        config: Config | None = None,
        record: str | Path | None = None,
        record_info: dict[str, str] | None = None,
        *,
        level: str | None = None,
        budget: float | None = None,
        scaler: GradScaler | None = None,
        group: dist.ProcessGroup | None = None,
    ) -> None:
        self.compiled = EagerWhileWatched()
        self.compiled_model = model  # what the user calls; the probe watches the eager module inside it
        model = uncompiled(model)
        self.model = model
        self.config = config or Config()
        if level is not None or budget is not None:  # the arguments win over the config's fields
            changes = {"level": level, "budget": budget}
            self.config = dataclasses.replace(self.config, **{k: v for k, v in changes.items() if v is not None})
        self.schedule = DetailSchedule(self.config)  # which steps take histograms and activity shares
        inner = unwrap(model)  # under DistributedDataParallel, the layers are named as in the user's module
        self.catalog = LayerCatalog(inner)  # the layers seen, their parameters and histogram edges
        self.guard = MeasurementGuard()  # what failed to be measured, and how often
        self.probe = Probe(inner, self.config, self.catalog, self.guard)
        self.probe.amp.scaler = scaler  # None: found among the training loop's variables (see observe.amp)
        # Several ranks: each step gathers every rank's statistics (one collective) into record.ranks.
        combine = self.config.combine_ranks and RankExchange.active(group)
        self.ranks: RankExchange | None = RankExchange(inner, group) if combine else None
        self.history = History(self.config.history_steps)
        self.tracker = DeadUnitTracker(self.config.dead_window)
        self.diagnosis = Diagnosis(self.config)
        self.step_index = 0  # completed steps
        self.unobserved_steps: list[int] = []  # steps in which no layer was observed
        self.changed_findings: list[Finding] = []  # raised or changed by the latest step
        self.graph: LayerGraph | None = None  # the layers' data flow, recorded in the first step
        self.probe.graph = GraphRecorder()
        self._boundary: float | None = None  # when the latest record was made (or watching began)
        self._carried = 0.0  # bpviz's seconds after the latest record was made, counted with the next step
        self._cost = [0, 0, 0.0, 0.0]  # timed steps, detailed ones, bpviz's seconds, wall seconds: every step
        # `record`: a run file (or a folder for a new dated one) receiving every step; see bpviz.engine.runs
        # Under torch.distributed each rank records its own file of one name: run.rank0.bpviz, run.rank1.bpviz, ...
        self.recorder = Recorder(recording_path(record, group), self, record_info) if record is not None else None
        self.recorder_path = self.recorder.path if self.recorder is not None else None  # kept after detach

    def attach(self) -> Watcher:
        """Start observing (idempotent)."""
        self.compiled.enter(self.compiled_model)
        self.probe.attach()
        if self._boundary is None:
            self._boundary = time.perf_counter()
            self.probe.detailed = self.schedule.next_is_detailed()
        return self

    def detach(self) -> None:
        """Stop observing and finish the run file, when recording; the model trains exactly as before attach."""
        self.probe.detach()
        self.compiled.exit()
        if self.recorder is not None:
            self.recorder.close(list(self.guard.errors))
            self.recorder = None

    def __enter__(self) -> Watcher:
        return self.attach()

    def __exit__(self, *exc_info) -> None:
        self.detach()

    def step(self, loss: torch.Tensor | float | None = None) -> StepRecord:
        """Mark the end of one training step: gather its measurements (one host sync) and judge them."""
        started = time.perf_counter()
        pending = self.probe.take_pending()
        detailed = self.probe.detailed
        settle(pending, self.config, self.catalog, self.guard, exact=self.probe.exact, end_of_step=True)
        clock = StepClock(pending.hook_seconds + self._carried, started, self._boundary)
        softmax_twice = isinstance(loss, torch.Tensor) and loss_applies_softmax_twice(loss)
        record = collect(
            self.catalog,
            self.probe.slices,
            self.guard,
            self.config,
            pending,
            self.step_index,
            loss,
            softmax_before_cross_entropy=softmax_twice,
            detailed=detailed,
            clock=clock,
        )
        mark_dead_units(record, self.tracker)  # part of building the record: nobody has seen it yet
        if not record.layers:
            self._note_unobserved(record.step)
        self._update_graph(record)
        if self.ranks is not None:  # still part of building the record: every rank's view of this step
            with self.guard.catch("combining the ranks' statistics"):
                record.ranks = self.ranks.exchange(record)
        self.history.append(record)
        self.step_index += 1
        self.changed_findings = self.diagnosis.judge_step(record, self.history, self.tracker)
        if self.recorder is not None:
            self.recorder.step(record, time.perf_counter() - started)
        self._boundary = clock.stopped
        if record.step_s:
            self._cost = [a + b for a, b in zip(self._cost, (1, int(detailed), record.overhead_s, record.step_s))]
        self.schedule.observe(detailed, record.overhead_s, record.step_s)
        self.probe.detailed = self.schedule.next_is_detailed()
        self._carried = time.perf_counter() - clock.stopped
        return record

    def _note_unobserved(self, step: int) -> None:
        """A step in which no layer was seen is said so, never passed off as a step without findings."""
        self.unobserved_steps.append(step)
        self.guard.note(f"step {step}: observed no layer of the model")
        if len(self.unobserved_steps) == 1:
            warnings.warn(
                f"bpviz observed no layer of the model in step {step}: nothing was measured. Was the model called "
                "with gradients enabled, as the module given to watch() (not a copy, not in another process)?",
                RuntimeWarning,
                stacklevel=3,
            )

    def _update_graph(self, record: StepRecord) -> None:
        """Keep the graph recorded in this step; record again next step if layers appeared since."""
        recorder = self.probe.graph
        if recorder is not None and recorder.order:
            self.graph = recorder.build(self.catalog.layers)
            self.probe.graph = None
        elif self.graph is not None and len(record.layers) > len(self.graph.nodes):
            self.probe.graph = GraphRecorder()

    def gradients_final(self, optimizer: torch.optim.Optimizer) -> None:
        """Measure the parameter gradients now: for code that accumulates, unscales or clips before the step.

        Training frameworks call this where their gradients are final and
        unscaled (Lightning's on_before_optimizer_step, before clipping); the
        values taken here are the step's, also when the optimizer then skips it.
        """
        self.probe.updates.measure_final(optimizer)

    def discard_pending(self) -> None:
        """Forget a step that failed half-way, so its partial measurements do not leak into the next."""
        self._carried += self.probe.take_pending().hook_seconds

    def record_validation(self, metrics: dict[str, float]) -> None:
        """Keep a validation result, and judge the forwards it ran (that is where train_mode_in_eval lives).

        The result is an event of its own in the history (after which step it ran), not a change to a
        step record that consumers may already hold.
        """
        last = self.step_index - 1 if self.step_index else None
        loose = [f for f in self.probe.pending.forwards if not f.grad_enabled]
        self._judge_loose_forwards()
        if self.recorder is not None:
            passes = [ForwardPass(f.grad_enabled, f.model_training, f.training_modules, f.eval_modules) for f in loose]
            self.recorder.validation(last, metrics, passes)
        if last is not None:
            self.history.add_validation(last, metrics)

    @property
    def findings(self) -> list[Finding]:
        """Every finding so far, worst first; forwards run since the last step are judged too."""
        self._judge_loose_forwards()
        return self.diagnosis.findings

    def report(self) -> dict:
        """The same dict `bpviz check --json` writes."""
        cost = cost_entry(self.config.level, *self._cost)
        return build_report(self.history, self.findings, self.step_index, list(self.guard.errors), cost=cost)

    def _judge_loose_forwards(self) -> None:
        forwards = [f for f in self.probe.pending.forwards if not f.grad_enabled]
        if forwards:
            last = self.step_index - 1 if self.step_index else None
            self.diagnosis.judge_forwards(forwards, last, self.history, self.tracker)


def watch(
    model: nn.Module,
    config: Config | None = None,
    record: str | Path | None = None,
    *,
    level: str | None = None,
    budget: float | None = None,
    scaler: GradScaler | None = None,
    group: dist.ProcessGroup | None = None,
) -> Watcher:
    """Attach bpviz to `model`; use as a context manager so it detaches on exit.

    `level="economy"` (the default) is cheap enough to leave on; `level="full"` takes every statistic on
    every step (see bpviz.engine.observe.levels). `budget=0.05` keeps bpviz's measured share of the step
    time under 5% by spacing the detailed steps; the always-on checks stay on every step.

    `record="runs/mnist.bpviz"` writes every step to that run file (never over an existing one);
    `record="runs/"` creates a new file named by date and time in that folder. `bpviz.open_run` reads it.
    `scaler`: the GradScaler of fp16 training, when it is not a variable of the code calling the model.

    Under torch.distributed call it on every rank, and `step()` on every rank every step: the ranks'
    statistics are gathered with one collective a step over `group` (the default group when None), and
    each rank records its own file (`run.rank1.bpviz`).
    """
    return Watcher(model, config, record=record, level=level, budget=budget, scaler=scaler, group=group).attach()
