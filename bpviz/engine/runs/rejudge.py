"""Judge a recorded run again, without training: the same rules over the recorded steps, with any thresholds.

The rules see what they saw live: each record in order, with the history and
dead-unit tracker rebuilt as they go, and the validation forwards after the
steps they followed. Dead units are recounted from each unit's recorded
firing, so a new `dead_window` applies too. The report is the one
`bpviz check` writes for a live run.
"""

from __future__ import annotations

from pathlib import Path

from bpviz.engine.config import Config
from bpviz.engine.diagnosis import Diagnosis
from bpviz.engine.record.dead_units import DeadUnitTracker, mark_dead_units
from bpviz.engine.record.history import History
from bpviz.engine.report.data import build_report
from bpviz.engine.runs.reader import SQLITE_MAGIC, Run, open_run
from bpviz.engine.runs.writer import SUFFIX


def is_run_file(path: Path) -> bool:
    """Whether `bpviz check` was given a recording (by its suffix or its SQLite header) rather than an experiment."""
    if path.suffix == SUFFIX:
        return True
    try:
        with open(path, "rb") as handle:
            return handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def check_recording(path: Path, config: Config | None) -> dict:
    """`bpviz check RUN.bpviz`: the report of the recording judged again (RunFileError when it cannot be read)."""
    with open_run(path) as run:
        return rejudge(run, config)


def rejudge(run: Run, config: Config | None = None) -> dict:
    """The report of `run` judged under `config` (default: the config it was recorded with)."""
    config = config or run.config
    diagnosis = Diagnosis(config)
    history = History(config.history_steps)
    tracker = DeadUnitTracker(config.dead_window)
    validations = dict(run.validation)
    forwards = run.forwards_after()
    steps = 0
    for record in run.records():
        mark_dead_units(record, tracker)  # recounted: a new dead_window applies too
        history.append(record)
        steps += 1
        diagnosis.judge_step(record, history, tracker)
        if record.step in validations:
            history.add_validation(record.step, validations[record.step])
            diagnosis.judge_forwards(forwards.get(record.step, []), record.step, history, tracker)
    history.interventions = run.interventions
    return build_report(history, diagnosis.findings, steps, run.unmeasured(), cost=run.cost())
