"""Where the window keeps the runs it trains: a per-user folder, and the newest runs in it for the start page.

Every training session the window runs is recorded there (a dated file per
load), so nothing seen is lost when the window closes. BPVIZ_RUNS_DIR moves
it (tests, or a user who wants runs on a bigger disk).
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QStandardPaths

from bpviz.engine.runs.errors import RunFileError
from bpviz.engine.runs.reader import open_run
from bpviz.engine.runs.writer import SUFFIX

ENVIRONMENT = "BPVIZ_RUNS_DIR"


def runs_folder() -> Path:
    """The folder the window records into (created when missing)."""
    override = os.environ.get(ENVIRONMENT)
    base = (
        Path(override)
        if override
        else Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)) / "runs"
    )
    base.mkdir(parents=True, exist_ok=True)
    return base


def newest_runs(folder: Path, most: int = 10) -> list[Path]:
    """The `most` newest run files in `folder`, newest first."""
    try:
        runs = [p for p in folder.iterdir() if p.suffix == SUFFIX and p.is_file()]
    except OSError:
        return []
    return sorted(runs, key=lambda p: p.stat().st_mtime, reverse=True)[:most]


def run_label(path: Path) -> str:
    """How the start page names a run: the experiment it recorded and its steps, then the file. A run the window
    recorded is named by its date alone, and ten dates in a row do not say which is which. The steps are those of
    the run as first trained, what opening it shows; a rewound run says how many branches it has besides."""
    try:
        with open_run(path) as run:
            source, steps = run.meta.get("experiment") or run.meta.get("model") or "", len(run)
            count = len(run.branches())
    except (RunFileError, OSError):
        return f"{path.name}  —  not readable as a run"
    what = Path(source).name if source else "a run"
    branched = f", {count} branches" if count > 1 else ""
    return f"{what}  ·  {steps} step{'' if steps == 1 else 's'}{branched}  —  {path.name}"
