"""A Watcher's steps, findings, validations and interventions, queued for the run file as they happen.

The Watcher calls this after each step; everything slow (encoding, SQLite)
runs on the writer's thread. What changes later in memory (a finding's
severity, a validation after its step) is written as a new row, so the file
tells what was known at each step. When the disk fails the recording stops
with one warning and a `recording_stopped` finding; training goes on.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Protocol

import torch

from bpviz.engine.config import Config
from bpviz.engine.diagnosis import Diagnosis
from bpviz.engine.diagnosis.finding import Finding
from bpviz.engine.observe.layer_graph import LayerGraph
from bpviz.engine.record.history import History
from bpviz.engine.record.records import ForwardPass, StepRecord
from bpviz.engine.runs import branches
from bpviz.engine.runs.branches import Branch
from bpviz.engine.runs.config_json import config_to_json
from bpviz.engine.runs.rows import RowWriter
from bpviz.engine.runs.writer import RunWriter, set_meta
from bpviz.version import __version__

STOPPED_KIND = "recording_stopped"


class Watched(Protocol):
    """What the recorder reads from the Watcher it records (named here so the two modules do not import each other)."""

    model: torch.nn.Module
    config: Config
    diagnosis: Diagnosis
    history: History
    graph: LayerGraph | None
    step_index: int


def _write_findings(
    rows: RowWriter, step: int | None, changed: list[Finding], held: list[Finding], branch: int
) -> None:
    """`step` is the stored key already; a held finding's last step is keyed on `branch` here."""
    for finding in changed:
        rows.finding(step, finding)
    for finding in held:
        if finding.last_step is None:
            rows.finding(step, finding)
        else:
            rows.finding_held(branches.key(branch, finding.last_step), finding)


class Recorder:
    """Records one Watcher into one run file."""

    def __init__(self, path: str | Path, watcher: Watched, info: dict[str, str] | None = None) -> None:
        meta = {
            "bpviz_version": __version__,
            "torch_version": torch.__version__,
            "python_version": platform.python_version(),
            "command": " ".join(sys.argv),
            "model": type(watcher.model).__name__,
            "config": config_to_json(watcher.config),
            **(info or {}),
        }
        self.writer = RunWriter(path, meta)
        self.path = self.writer.path
        self._watcher = watcher
        self._written: dict[tuple[str, str | None], dict] = {}
        self._interventions = 0
        self._graph = None
        self._last = time.perf_counter()
        self._warned = False
        self._branch = branches.MAIN  # the branch steps are written to (see bpviz.engine.runs.branches)

    def step(self, record: StepRecord, watch_seconds: float) -> None:
        """Queue a finished step with the findings and interventions that changed with it."""
        now = time.perf_counter()
        extras = {"wall_time": time.time(), "step_seconds": now - self._last, "watch_seconds": watch_seconds}
        self._last = now
        findings, held = self._changed_findings()
        interventions = self._new_interventions()
        graph = self._new_graph()
        stored, branch = self._key(record.step), self._branch
        if stored != record.step:
            record = dataclasses.replace(record, step=stored)

        def job(rows: RowWriter) -> None:
            rows.step(record, extras)
            _write_findings(rows, stored, findings, held, branch)
            for first_step, label in interventions:
                rows.event(first_step, "intervention", label)
            if graph is not None:
                set_meta(rows.conn, {"graph": graph})

        self.writer.submit(stored, job)
        self.check()

    def interventions_now(self) -> None:
        """Queue the remedies applied since the last step at once, so a viewer of the file marks them before the
        next step (otherwise they are written with it)."""
        interventions = self._new_interventions()
        if not interventions:
            return
        step = self._watcher.step_index - 1 if self._watcher.step_index else None

        def job(rows: RowWriter) -> None:
            for first_step, label in interventions:
                rows.event(first_step, "intervention", label)

        self.writer.submit(step, job)

    def start_branch(self, branch: int, parent: int, fork_step: int, label: str | None = None) -> None:
        """From now on, steps go to `branch`, which shares steps up to `fork_step` with `parent` (a rewind).

        Every finding is written again with the branch's first step, so the
        branch's line reads its findings as they stood when it began.
        """
        self._branch = branch
        self._written.clear()
        self._interventions = len(self._watcher.history.interventions)
        entry = Branch(branch, parent, fork_step, label)
        self.writer.submit(None, lambda rows: branches.add(rows.conn, entry))

    def validation(self, step: int | None, metrics: dict[str, float], forwards: list[ForwardPass]) -> None:
        """Queue a validation run after `step`, with the forwards it ran (re-judged when the run is checked again)."""
        metrics, forwards, (findings, held) = dict(metrics), list(forwards), self._changed_findings()
        step, branch = self._key(step), self._branch

        def job(rows: RowWriter) -> None:
            rows.event(step, "validation", None, metrics)
            rows.event(step, "forwards", None, forwards)
            _write_findings(rows, step, findings, held, branch)

        self.writer.submit(step, job)

    def close(self, unmeasured: list[str]) -> None:
        """Write what changed since the last step and finish the file."""
        step, branch = self._key(self._watcher.step_index - 1 if self._watcher.step_index else None), self._branch
        (findings, held), interventions = self._changed_findings(), self._new_interventions()

        def job(rows: RowWriter) -> None:
            _write_findings(rows, step, findings, held, branch)
            for first_step, label in interventions:
                rows.event(first_step, "intervention", label)
            set_meta(rows.conn, {"unmeasured": json.dumps(unmeasured), "steps": str(self._watcher.step_index)})

        self.writer.submit(step, job)
        self.writer.close()
        self.check()

    def check(self) -> None:
        """Report a failed recording once: a warning, and a finding saying at which step and why."""
        failure = self.writer.failure
        if failure is None or self._warned:
            return
        self._warned = True
        step, why = failure
        at = f"at step {step}" if step is not None else "at its end"
        message = f"Recording to {self.path} stopped {at}: {why}. Training goes on; earlier steps are in the file."
        warnings.warn(message, RuntimeWarning, stacklevel=3)
        self._watcher.diagnosis.add(
            Finding(
                STOPPED_KIND,
                "warning",
                None,
                step,
                message,
                "bpviz writes every step to the run file on a background thread; the disk refused a write.",
                ["Free disk space or record into a writable folder, then record a new run."],
                step,
            )
        )

    def _changed_findings(self) -> tuple[list[Finding], list[Finding]]:
        """Findings raised or changed since the last look, and those that only held again (last_step moved)."""
        changed, held = [], []
        for finding in self._watcher.diagnosis.findings:
            state = finding.to_dict()
            before = self._written.get(finding.key)
            if before == state:
                continue
            self._written[finding.key] = state
            if before is not None and {**before, "last_step": state["last_step"]} == state:
                held.append(copy.copy(finding))
            else:
                changed.append(copy.copy(finding))
        return changed, held

    def _new_interventions(self) -> list[tuple[int, str]]:
        interventions = self._watcher.history.interventions
        new = [(self._key(step), label) for step, label in interventions[self._interventions :]]
        self._interventions = len(interventions)
        return new

    def _key(self, step: int | None) -> int | None:
        return branches.key(self._branch, step)

    def _new_graph(self) -> str | None:
        graph = self._watcher.graph
        if graph is None or graph is self._graph:
            return None
        self._graph = graph
        return json.dumps(dataclasses.asdict(graph))
