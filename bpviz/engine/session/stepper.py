"""Drives an Experiment one training step at a time: forward, loss, backward, update.

The Stepper is what the window's experiment process (engine/session/driver.py)
or a loop (`bpviz check`) calls; it owns the data iterator and a Watcher, and
turns every failure in user code into a UserCodeError naming the phase, the
step and the layer. It must be used from one thread at a time. The `*_event`
methods do the same work and also say which step it belongs to (events.py):
every decision about the run is made here, none by the viewer.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from bpviz.engine.config import Config
from bpviz.engine.diagnosis.finding import Finding
from bpviz.engine.diagnosis.unit_forensics import DeadUnit, dead_units
from bpviz.engine.load.experiment import Experiment
from bpviz.engine.observe.catalog import layers_inside
from bpviz.engine.observe.stats import histogram_sample
from bpviz.engine.record.history import UNDO_PREFIX, History
from bpviz.engine.record.records import StepRecord
from bpviz.engine.session import remedies
from bpviz.engine.session.breakpoints import Breakpoint, Hit, first_hit
from bpviz.engine.session.events import Intervened, Validated
from bpviz.engine.session.remedies import Remedy
from bpviz.engine.session.snapshots import (
    DataPosition,
    RngState,
    Snapshot,
    SnapshotStore,
    capture_model,
    default_limit,
    host_state,
    restore_model,
)
from bpviz.engine.session.step_gate import Gate, PhaseEvent, StepAborted
from bpviz.engine.user_error import USER_CODE_ENDINGS, UserCodeError, user_code_failed
from bpviz.engine.watcher import Watcher


class Stepper:
    """Trains an experiment step by step under a Watcher."""

    def __init__(
        self,
        experiment: Experiment,
        config: Config | None = None,
        record: str | Path | None = None,
        level: str | None = None,
        snapshots: SnapshotStore | None = None,
    ) -> None:
        """`level` overrides the config's: the window passes "full", since a user stepping by hand wants
        every statistic of every step; `bpviz check` keeps the config's (economy by default).
        `snapshots`: where the states `rewind` goes back to are kept; by default every 10 steps, as many as
        512 MiB hold for this model (see bpviz.engine.session.snapshots)."""
        self.experiment = experiment
        info = _experiment_info(experiment) if record is not None else None
        self.watcher = Watcher(experiment.model, config, record=record, record_info=info, level=level).attach()
        self._batches: Iterator | None = None
        self._device = _device_of(experiment.model)
        self.clip_grad_norm: float | None = None  # set by the gradient-clipping remedy
        self.remedies: list[Remedy] = []  # applied and not undone, oldest first
        # The data position: the epoch, the batches read in it, and the RNG state its iterator was made with.
        self._position = DataPosition(0, 0, None)
        self.branch = 1  # the branch of the run now trained; a rewind starts a new one
        self.branches: dict[int, tuple[int | None, int]] = {1: (None, 0)}  # branch: (parent, first step)
        self.snapshots = (
            snapshots if snapshots is not None else SnapshotStore(limit=default_limit(_state_size(experiment)))
        )
        self._snapshot(pinned=True)
        # Told the phase of each step as it begins (the experiment process's Position, read after a crash).
        self.phase_reporter: Callable[[int, str | None], None] | None = None

    @property
    def step_index(self) -> int:
        """Completed training steps."""
        return self.watcher.step_index

    @property
    def history(self) -> History:
        return self.watcher.history

    @property
    def findings(self) -> list[Finding]:
        return self.watcher.findings

    def report(self) -> dict:
        return self.watcher.report()

    def close(self) -> None:
        """Detach every hook; the model is left as a plain module."""
        self.watcher.detach()

    def step(self, gate: Gate | None = None) -> StepRecord:
        """Run one training step on the next batch (cycling through train_data) and return its record.

        With a `gate`, the step pauses where the gate asks (each layer of the
        forward and backward pass, the loss, the update); a step stopped
        before its update raises StepAborted and leaves weights, buffers and
        history as they were before it; one stopped at the update pause is
        completed and recorded, since its weights have already changed.
        """
        if gate is None:
            return self._snapshot_if_due(self._run_step(None))
        buffers = [b.detach().clone() for b in self.experiment.model.buffers()]
        self.watcher.probe.listener = _PhaseListener(self, gate)
        try:
            return self._snapshot_if_due(self._run_step(gate))
        except StepAborted:
            self.watcher.discard_pending()
            self.experiment.optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():
                for buffer, saved in zip(self.experiment.model.buffers(), buffers):
                    buffer.copy_(saved)
            raise
        finally:
            self.watcher.probe.listener = None
            gate.finish()

    def _run_step(self, gate: Gate | None) -> StepRecord:
        exp = self.experiment
        n = self.step_index
        self._at(n, "reading the batch")
        with self._user_code(f"reading batch {n} of train_data", f"reading batch {n} of train_data"):
            inputs, targets = self._next_batch()
        self._at(n, "forward")
        with self._user_code(f"the forward pass failed at step {n}", f"the forward pass at step {n}"):
            exp.optimizer.zero_grad(set_to_none=True)
            outputs = _call_model(exp.model, inputs)
        self._at(n, "loss")
        with self._user_code(f"the loss function failed at step {n}", f"the loss function at step {n}"):
            loss = exp.loss_fn(outputs, targets)
            _check_loss(loss)
        if gate is not None and gate.wants("loss"):
            gate.pause(PhaseEvent(n, "loss", None, 0, loss=float(loss.detach())))
        self._at(n, "backward")
        with self._user_code(f"the backward pass failed at step {n}", f"the backward pass at step {n}"):
            loss.backward()
        self._at(n, "update")
        if self.clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(exp.model.parameters(), self.clip_grad_norm)
        with self._user_code(f"the optimizer step failed at step {n}", f"the optimizer step at step {n}"):
            exp.optimizer.step()
        if gate is not None and gate.wants("update"):
            try:
                gate.pause(PhaseEvent(n, "update", None, 0, update_ratios=self._update_ratios()))
            except StepAborted:
                pass  # the weights have changed already: a stop here completes the step, so history agrees
        self._at(n, "recording")
        record = self.watcher.step(loss)
        self._at(n + 1, None)
        return record

    def _at(self, step: int, phase: str | None) -> None:
        if self.phase_reporter is not None:
            self.phase_reporter(step, phase)

    def _update_ratios(self) -> dict[str, float]:
        """||dW|| / ||W|| per parameter for the update just made (a paused step can afford the sync)."""
        probe = self.watcher.probe
        params = self.watcher.catalog.parameters()
        ratios = {}
        with torch.no_grad():
            for name, norm in probe.pending.update_norms.items():
                weight = float(torch.linalg.vector_norm(params[name].detach()))
                change = float(norm) * probe.slices.scale(params[name])
                ratios[name] = change / weight if weight > 0 else float("inf")
        return ratios

    def apply(self, remedy: Remedy) -> Remedy:
        """Keep an applied remedy (see bpviz.engine.session.remedies) and mark it on the time axis."""
        self.remedies.append(remedy)
        self.history.interventions.append((remedy.step, remedy.label))
        self._snapshot(pinned=True, after_remedy=True)
        return remedy

    def undo_last(self) -> Remedy | None:
        """Take back the most recent remedy; returns it, or None when there is none."""
        if not self.remedies:
            return None
        remedy = self.remedies.pop()
        remedy.undo()
        self.history.interventions.append((self.step_index, f"{UNDO_PREFIX}{remedy.label}"))
        self._snapshot(pinned=True, after_remedy=True)
        return remedy

    # --- going back ---
    def rewind(self, step: int) -> StepRecord:
        """Go back to the end of `step` and return its record; the next step is `step + 1`, on a new branch.

        The nearest snapshot at or before that point is restored and the steps
        from it to `step` are trained again, judged but not recorded (the run
        file has them): with the same weights, optimizer state, RNG states and
        batches they come out bit for bit as they did. Remedies applied after
        `step` are gone with the state they changed; what user code did outside
        the model (files written, prints) is not undone. Raises ValueError for
        a step not trained yet on this branch's line; when a replayed step
        fails (UserCodeError), the run stands at the step before it, and that
        is where the new branch starts.
        """
        if not 0 <= step < self.step_index:
            raise ValueError(f"cannot rewind to step {step}: steps 0 to {self.step_index - 1} have been trained")
        boundary = step + 1
        lineage = self._lineage()
        nearest = self.snapshots.nearest(lineage, boundary)
        self._restore(nearest, boundary)
        recorder, self.watcher.recorder = self.watcher.recorder, None  # the file has these steps already
        try:
            while self.step_index < boundary:
                self._run_step(None)
        finally:
            self.watcher.recorder = recorder
            self._start_branch(lineage, self.step_index - 1)
        return self.history.latest

    def _start_branch(self, lineage: list[tuple[int, int, int | None]], fork_step: int) -> None:
        """Train on as a new branch sharing the steps up to `fork_step` with the branch that trained that step."""
        parent = next((b for b, start, _ in reversed(lineage) if start <= fork_step), lineage[0][0])
        self.branch = max(self.branches) + 1
        self.branches[self.branch] = (parent, fork_step + 1)
        if self.watcher.recorder is not None:
            self.watcher.recorder.start_branch(self.branch, parent, fork_step)
        self._snapshot(pinned=True)

    def _lineage(self) -> list[tuple[int, int, int | None]]:
        """(branch, first boundary, last boundary or None) from the run's start to the current branch."""
        line, branch, end = [], self.branch, None
        while branch is not None:
            parent, start = self.branches[branch]
            line.append((branch, start, end))
            branch, end = parent, start
        return line[::-1]

    def _snapshot_if_due(self, record: StepRecord) -> StepRecord:
        if self.snapshots.due(self.step_index):
            self._snapshot()
        return record

    def _snapshot(self, pinned: bool = False, after_remedy: bool = False) -> None:
        exp = self.experiment
        tensors, modules = capture_model(exp.model)
        watcher = self.watcher
        judging = copy.deepcopy(
            (watcher.tracker, watcher.diagnosis, watcher.schedule, watcher.unobserved_steps, watcher.probe.detailed)
        )
        extra = {
            "clip": self.clip_grad_norm,
            "remedies": list(self.remedies),
            "substitutions": dict(watcher.probe.substitutions),
            "judging": judging,
        }
        self.snapshots.add(
            Snapshot(
                self.branch,
                self.step_index,
                pinned,
                after_remedy,
                tensors,
                modules,
                host_state(exp.optimizer),
                RngState.capture(exp.train_data),
                self._position,
                extra,
            )
        )

    def _restore(self, saved: Snapshot, boundary: int) -> None:
        """Put the run back as it was at `saved`, keeping in History what came before it and before `boundary`."""
        exp, watcher = self.experiment, self.watcher
        watcher.discard_pending()
        exp.optimizer.zero_grad(set_to_none=True)
        restore_model(exp.model, saved.tensors, saved.modules)
        exp.optimizer.load_state_dict(saved.optimizer)
        extra = saved.extra
        self.clip_grad_norm = extra["clip"]
        self.remedies = list(extra["remedies"])
        watcher.probe.substitutions.clear()
        watcher.probe.substitutions.update(extra["substitutions"])
        tracker, diagnosis, schedule, unobserved, detailed = copy.deepcopy(extra["judging"])
        watcher.tracker, watcher.diagnosis, watcher.schedule = tracker, diagnosis, schedule
        watcher.unobserved_steps, watcher.probe.detailed = unobserved, detailed
        watcher.step_index = saved.boundary
        watcher.history = watcher.history.before(saved.boundary, marks_before=boundary)
        self._position = saved.data
        self._batches = saved.data.iterator(exp.train_data)
        saved.rng.restore(exp.train_data)

    # --- the same, told with the step it belongs to ---
    def validate_event(self) -> Validated:
        """`validate()`, told with the step it belongs to (the latest completed one, -1 before any step) and
        whether History kept it (not before any step, nor for an experiment without validation data)."""
        before = len(self.history.validation)
        metrics = self.validate()
        kept = len(self.history.validation) > before
        return Validated(self.step_index - 1, dict(metrics), kept)

    def remedy_event(self, name: str, args: tuple = ()) -> Intervened:
        """Apply remedy `name` (see remedies.REMEDIES) with `args`; ValueError/KeyError when it does not fit."""
        remedy = self.apply(remedies.apply_named(self, name, tuple(args)))
        return Intervened(remedy.step, remedy.label)

    def undo_event(self) -> Intervened | None:
        """`undo_last()`, told as the mark it leaves on the time axis; None when nothing was applied."""
        if self.undo_last() is None:
            return None
        step, label = self.history.interventions[-1]
        return Intervened(step, label)

    def breakpoint_hit(self, breakpoints: list[Breakpoint]) -> Hit | None:
        """The first of `breakpoints` the latest step meets, compared with the step before it."""
        records = self.history.records
        if not breakpoints or not records:
            return None
        previous = records[-2] if len(records) > 1 else None
        return first_hit(breakpoints, records[-1], previous, self.watcher.changed_findings)

    def hyperparameters(self) -> dict[str, float | None]:
        """lr, momentum, weight_decay and gradient clipping now in force (see remedies.hyperparameters)."""
        return remedies.hyperparameters(self)

    def dead_units(self, layer: str) -> list[DeadUnit]:
        """The dead units of `layer` at the latest step with the evidence of their death; [] for other layers."""
        try:
            return dead_units(self.history, self.watcher.catalog, self.watcher.tracker, layer)
        except (KeyError, ValueError, IndexError):
            return []  # not (or no longer) a ReLU-family layer

    def validate(self) -> dict[str, float]:
        """Run the file's validation (its own `evaluate` when given) and return the metrics.

        Module modes are restored afterwards, as a training loop's `model.train()`
        would, so a validation that forgets `model.eval()` is caught without
        leaving training itself in the wrong mode.
        """
        exp = self.experiment
        if exp.val_data is None:
            return {}
        modes = {module: module.training for module in exp.model.modules()}
        try:
            if exp.evaluate is not None:
                with self._user_code("evaluate(model, val_data) failed", "evaluate(model, val_data)"):
                    metrics = _as_metrics(exp.evaluate(exp.model, exp.val_data))
            else:
                with self._user_code("validation failed", "validation"):
                    metrics = self._default_validation()
        finally:
            for module, training in modes.items():
                module.training = training
        self.watcher.record_validation(metrics)
        return metrics

    def _default_validation(self) -> dict[str, float]:
        exp = self.experiment
        exp.model.eval()
        total, correct, seen, batches = 0.0, 0, 0, 0
        with torch.no_grad():
            for inputs, targets in exp.val_data:
                inputs, targets = _to(inputs, self._device), _to(targets, self._device)
                outputs = _call_model(exp.model, inputs)
                total += float(exp.loss_fn(outputs, targets))
                batches += 1
                if isinstance(outputs, torch.Tensor) and outputs.dim() == 2 and targets.dim() == 1:
                    correct += int((outputs.argmax(dim=1) == targets).sum())
                    seen += targets.numel()
        metrics = {"loss": total / max(batches, 1)}
        if seen:
            metrics["accuracy"] = correct / seen
        return metrics

    def _next_batch(self):
        data, position = self.experiment.train_data, self._position
        if self._batches is None:
            position = DataPosition(position.epoch, 0, RngState.capture(data))
            self._batches = iter(data)
        try:
            batch = next(self._batches)
        except StopIteration:  # a new epoch
            position = DataPosition(position.epoch + 1, 0, RngState.capture(data))
            self._batches = iter(data)
            batch = next(self._batches)
        self._position = DataPosition(position.epoch, position.read + 1, position.epoch_rng)
        inputs, targets = batch
        return _to(inputs, self._device), _to(targets, self._device)

    @contextmanager
    def _user_code(self, what: str, actor: str):
        """Turn user code's exception, sys.exit() or own KeyboardInterrupt into a UserCodeError naming its layer.

        `what` is said for an exception, `actor` for a sys.exit() (see user_code_failed). bpviz's own
        interruptions (a signal, a timeout) are not user code's doing and pass through untouched.
        """
        try:
            yield
        except StepAborted:
            raise
        except UserCodeError:
            self.watcher.discard_pending()
            raise
        except USER_CODE_ENDINGS as exc:  # user code may raise anything
            probe = self.watcher.probe
            layer, layer_type = (probe.failed_layer, probe.failed_layer_type) if "forward" in what else (None, None)
            held = self._layers_inside(layer)
            if held:  # a container's own forward raised: it is no layer of the table, the layers it holds are
                layer_type = f"{layer_type}, the module holding {', '.join(held[:3])}{', …' * (len(held) > 3)}"
            if "backward" in what:
                layer = probe.last_layer
                known = self.watcher.catalog.layers.get(layer) if layer is not None else None
                layer_type = known.type if known is not None else None
            self.watcher.discard_pending()
            raise user_code_failed(exc, what, actor, self.experiment.source, layer, layer_type) from exc

    def _layers_inside(self, module: str | None) -> list[str]:
        """The layers within module `module` when it is no layer itself (a container), else []."""
        layers = self.watcher.catalog.layers
        return [] if not module or module in layers else layers_inside(module, layers)


class _PhaseListener:
    """Turns the probe's forward/backward callbacks into gate pauses carrying the live tensor."""

    def __init__(self, stepper: Stepper, gate: Gate) -> None:
        self._stepper = stepper
        self._gate = gate
        self._counts: dict[str, int] = {}

    def __call__(self, phase: str, layer: str, tensor: torch.Tensor) -> None:
        index = self._counts.get(phase, 0)
        self._counts[phase] = index + 1
        if not self._gate.wants(phase):
            return
        with torch._C.DisableTorchFunction(), torch.no_grad():
            sample_size = self._stepper.watcher.config.histogram_sample
            values = histogram_sample(tensor.detach().float(), sample_size).cpu().numpy()
            norm = float(torch.linalg.vector_norm(tensor.detach().float()))
        event = PhaseEvent(
            self._stepper.step_index, phase, layer, index, values, norm, float(values.mean()), float(values.std())
        )
        self._gate.pause(event)


def _state_size(experiment: Experiment) -> int:
    """Bytes one snapshot is expected to take: weights, buffers, and two optimizer moments per weight (Adam's)."""
    params = sum(p.numel() * p.element_size() for p in experiment.model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in experiment.model.buffers())
    return 3 * params + buffers


def _experiment_info(experiment: Experiment) -> dict[str, str]:
    """What a run file keeps about the experiment file it trained: its path, its hash (edited since?), the seed."""
    info = {"experiment": str(Path(experiment.source).resolve()), "seed": str(experiment.seed)}
    try:
        info["experiment_sha256"] = hashlib.sha256(Path(experiment.source).read_bytes()).hexdigest()
    except OSError:
        pass
    return info


def _call_model(model: nn.Module, inputs):
    if isinstance(inputs, dict):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def _check_loss(loss) -> None:
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise TypeError(f"loss_fn must return a scalar tensor, got {shape}")
    if not loss.requires_grad:
        raise TypeError("the loss does not require grad: is the model's output detached, or all parameters frozen?")


def _as_metrics(value) -> dict[str, float]:
    if not isinstance(value, dict):
        raise TypeError(f"evaluate() must return a dict of metrics, got {type(value).__name__}")
    metrics = {}
    for key, item in value.items():
        number = float(item)
        metrics[str(key)] = number if math.isfinite(number) else float("nan")
    return metrics


def _to(value, device: torch.device):
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, (tuple, list)):
        return type(value)(_to(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _to(v, device) for k, v in value.items()}
    return value


def _device_of(model: nn.Module) -> torch.device:
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")
