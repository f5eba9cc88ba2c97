"""One `bpviz check` run and its exit code: 0 ran clean, 1 ran and found errors, 2 could not run.

The contract holds however the run ends. User code that raises, calls sys.exit()
or raises its own KeyboardInterrupt is a failure of the file (2), told in a few
lines; so is anything that breaks inside bpviz while it runs the file. A signal
ends the run with 128 + its number (130 for Ctrl+C) and a time limit with 2; in
every case the steps recorded so far are printed and written to the JSON, with an
`error` or `interrupted` entry saying why the run ended early, and the JSON is
written even when nothing was recorded, so a CI step that uploads it finds it.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from bpviz.engine.config import Config
from bpviz.engine.record.history import History
from bpviz.engine.report.data import build_report
from bpviz.engine.report.text import format_report
from bpviz.engine.report.write import ReportWriteError, write_report
from bpviz.engine.session.interrupt import Interrupted, interruptible
from bpviz.engine.user_error import UserCodeError, describe_exception, full_traceback, locate

EXIT_CLEAN, EXIT_FOUND_ERRORS, EXIT_COULD_NOT_RUN = 0, 1, 2


@dataclass
class CheckRequest:
    """What the command line asked for."""

    file: Path
    steps: int = 20
    trust: bool = False
    weights: Path | None = None
    input_shape: tuple[int, ...] | None = None
    seed: int = 0
    json: Path | None = None
    verbose: bool = False
    timeout: float | None = None
    config: Config | None = None  # thresholds (--config, --set); the defaults when None
    record: str | Path | None = None  # a run file (or a folder, written with a trailing slash) to record into
    level: str | None = None  # what to measure (bpviz.engine.observe.levels); None: the config's


class CheckRun:
    """Loads, trains, validates and reports once; `run()` returns the exit code."""

    def __init__(self, request: CheckRequest, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.request = request
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.stepper = None
        self.failure: UserCodeError | None = None
        self.interrupted: Interrupted | None = None
        self._finish_lock = threading.Lock()  # the main thread and a timeout's watchdog may both try to finish

    def run(self) -> int:
        refusal = self._refuse_json_path()
        if refusal is not None:
            print(refusal, file=self.err)
            return EXIT_COULD_NOT_RUN
        with interruptible(self.request.timeout, self._finish_stuck) as interruptions:
            try:
                self._train()
            except Interrupted as interrupted:
                self.interrupted = interrupted
            finally:
                interruptions.finishing = True
            return self._finish()

    def _refuse_json_path(self) -> str | None:
        """`--json` onto one of the run's own input files would overwrite the user's work with a report."""
        target = self.request.json
        if target is None:
            return None
        for kind, source in (("the experiment file", self.request.file), ("the --weights file", self.request.weights)):
            if source is not None and _same_file(target, source):
                return f"refusing --json {target}: it is {kind}, which the report would overwrite; choose another path"
        return None

    def _train(self) -> None:
        from bpviz.engine.load.experiment import load_experiment
        from bpviz.engine.session.stepper import Stepper

        request = self.request
        try:
            experiment = load_experiment(
                request.file,
                trust=request.trust,
                weights=request.weights,
                input_shape=request.input_shape,
                seed=request.seed,
            )
            self.stepper = Stepper(experiment, request.config, record=request.record, level=request.level)
            for _ in range(request.steps):
                self.stepper.step()
            if experiment.val_data is not None:
                self.stepper.validate()
        except UserCodeError as error:
            self.failure = error
        except Exception as exc:  # a failure inside bpviz while running the file: exit 2 all the same, in few lines
            self.failure = self._internal_failure(exc)

    def _internal_failure(self, exc: Exception) -> UserCodeError:
        if self.stepper is None:
            what = f"bpviz could not load {self.request.file.name}"
        else:
            what = f"bpviz failed while measuring step {self.stepper.step_index}"
        return UserCodeError(
            f"{what} (if the file is not to blame, please report it)",
            why=describe_exception(exc),
            where=locate(exc, prefer=self.request.file),
            details=full_traceback(exc),
        )

    def _finish_stuck(self, interrupted: Interrupted) -> None:
        """From the watchdog thread, while the main thread is stuck in user code: report what was recorded."""
        self.interrupted = interrupted
        self._finish(close=False)

    def _finish(self, close: bool = True) -> int:
        """Print and write what was recorded, say why the run ended early, and return the exit code."""
        with self._finish_lock:
            if close and self.stepper is not None:
                self.stepper.close()
            report = self._report()
            if report["steps"]:
                print(format_report(report), end="", file=self.out)
            self.out.flush()
            written = self._write(report)
            self._explain()
            if self.interrupted is not None:
                return self.interrupted.exit_code
            if self.failure is not None or not written:
                return EXIT_COULD_NOT_RUN
            if self.stepper is not None and self.stepper.watcher.unobserved_steps:
                steps = self.stepper.watcher.unobserved_steps
                print(
                    f"bpviz observed no layer of the model in {len(steps)} of {report['steps']} step(s) "
                    f"(first: step {steps[0]}): nothing was measured there, so no finding means nothing",
                    file=self.err,
                )
                return EXIT_COULD_NOT_RUN
            found_errors = any(finding["severity"] == "error" for finding in report["findings"])
            return EXIT_FOUND_ERRORS if found_errors else EXIT_CLEAN

    def _report(self) -> dict:
        if self.stepper is not None:
            report = self.stepper.report()
        else:
            report = build_report(History(1), [], 0)
        if self.failure is not None:
            failure = self.failure
            report["error"] = {"what": failure.what, "where": failure.where, "layer": failure.layer, "why": failure.why}
        if self.interrupted is not None:
            report["interrupted"] = {
                "reason": self.interrupted.reason,
                "step": report["steps"],
                "seconds": self.interrupted.seconds,
            }
        return report

    def _write(self, report: dict) -> bool:
        if self.request.json is None:
            return True
        try:
            write_report(self.request.json, report)
        except ReportWriteError as error:
            print(error, file=self.err)
            return False
        return True

    def _explain(self) -> None:
        """The few lines on stderr saying why the run ended early."""
        if self.interrupted is not None:
            steps = self.stepper.step_index if self.stepper is not None else 0
            print(
                f"{self.interrupted.describe()}, after {steps} completed step(s); they are in the report", file=self.err
            )
        if self.failure is not None:
            print(self.failure.summary(), file=self.err)
            if self.request.verbose and self.failure.details:
                print("\n" + self.failure.details.rstrip(), file=self.err)
            elif self.failure.details:
                print("  (run with --verbose for the full traceback)", file=self.err)
        self.err.flush()


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False
