"""The run files of one torch.distributed job read as a set: each rank's own run, and the ranks side by side.

Each rank records its own file (`run.rank0.bpviz`, `run.rank1.bpviz`, ...;
see recording.py). Any one of them, or the folder holding them, names the
set. Every rank's file is opened with the ordinary reader; the combined view
reads the same step from each (its record at or before that step) and puts
the ranks' values of one statistic side by side per layer, so nothing is
stored twice and a rank that recorded fewer steps simply shows what it had.
"""

from __future__ import annotations

import bisect
import glob
import math
import re
from pathlib import Path

import numpy as np

from bpviz.engine.diagnosis.finding import Finding
from bpviz.engine.diagnosis.rank_divergence import KIND as RANK_DIVERGENCE
from bpviz.engine.runs.reader import Run, open_run

_RANK_STEM = re.compile(r"^(?P<base>.+)\.rank(?P<rank>\d+)$")
SUFFIX = ".bpviz"


def rank_files(path: str | Path) -> dict[int, Path]:
    """{rank: file} of the set `path` belongs to (a rank's file or the folder holding a set); {} when none.

    A folder with the files of several jobs names the one written last.
    """
    path = Path(path)
    if path.is_dir():
        sets: dict[str, dict[int, Path]] = {}
        for candidate in path.glob(f"*.rank*{SUFFIX}"):
            match = _RANK_STEM.match(candidate.stem)
            if match is not None and candidate.is_file():
                sets.setdefault(match["base"], {})[int(match["rank"])] = candidate
        if not sets:
            return {}
        newest = max(sets.values(), key=lambda files: max(f.stat().st_mtime for f in files.values()))
        return dict(sorted(newest.items()))
    match = _RANK_STEM.match(path.stem) if path.suffix.lower() == SUFFIX else None
    if match is None:
        return {}
    found = {}
    for candidate in path.parent.glob(f"{glob.escape(match['base'])}.rank*{path.suffix}"):
        other = _RANK_STEM.match(candidate.stem)
        if other is not None and other["base"] == match["base"] and candidate.is_file():
            found[int(other["rank"])] = candidate
    return dict(sorted(found.items())) if len(found) > 1 else {}


class RankSet:
    """Every rank's run file of one job, open for reading; RunFileError when one cannot be read."""

    def __init__(self, files: dict[int, Path]) -> None:
        self.files = dict(sorted(files.items()))
        self.runs: dict[int, Run] = {}
        try:
            for rank, path in self.files.items():
                self.runs[rank] = open_run(path)
        except Exception:
            self.close()
            raise
        self._steps = {rank: [int(s) for s in run.steps()] for rank, run in self.runs.items()}

    @property
    def ranks(self) -> list[int]:
        return list(self.files)

    def refresh(self) -> None:
        """Take in the steps each rank's writer committed since."""
        for rank, run in self.runs.items():
            self._steps[rank] += [int(s) for s in run.new_steps()]

    def side_by_side(self, step: int | None, stat: str = "grad_norm") -> tuple[list[str], np.ndarray]:
        """(layers, values[rank index, layer]) of one LayerStep statistic at `step` (None: each rank's latest).

        Layers in the first rank's forward order, then any only other ranks have; NaN where a rank has no value.
        """
        columns: dict[str, dict[int, float]] = {}
        for index, (rank, run) in enumerate(self.runs.items()):
            shown = _at_or_before(self._steps[rank], step)
            if shown is None:
                continue
            for layer in run.record(shown).layers:
                value = getattr(layer, stat)
                columns.setdefault(layer.name, {})[index] = float(value) if value is not None else math.nan
        values = np.full((len(self.runs), len(columns)), math.nan)
        for j, per_rank in enumerate(columns.values()):
            for index, value in per_rank.items():
                values[index, j] = value
        return list(columns), values

    def divergences(self, step: int | None = None) -> list[Finding]:
        """The rank-divergence findings any rank recorded by `step`, each once (every rank judges the same table)."""
        seen: dict[tuple, Finding] = {}
        for run in self.runs.values():
            for finding in run.findings_at(step):
                if finding.kind == RANK_DIVERGENCE:
                    seen.setdefault((finding.layer, finding.rank, finding.step), finding)
        return list(seen.values())

    def close(self) -> None:
        for run in self.runs.values():
            run.close()
        self.runs.clear()


def _at_or_before(steps: list[int], step: int | None) -> int | None:
    if not steps:
        return None
    if step is None:
        return steps[-1]
    index = bisect.bisect_right(steps, step) - 1
    return steps[index] if index >= 0 else None
