"""ruff, configured in pyproject.toml, finds nothing in the code it covers."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("ruff") is None, reason="ruff is not installed (pip install -e '.[test]' installs it)"
)

# Swept already; the window, the CLI, run files and their tests are still being edited in parallel and follow
# in one sweep (NOT_YET_SWEPT lists what inside the swept folders waits for it).
NOT_YET_SWEPT = ["bpviz/engine/runs", "bpviz/engine/session/check.py", "bpviz/engine/session/interrupt.py"]
SWEPT = [
    "bpviz/__init__.py",
    "bpviz/__main__.py",
    "bpviz/engine",
    "tests/engine",
    "tests/test_layers.py",
    "tests/test_lint.py",
    "benchmarks/overhead.py",
]


def _ruff(paths: list[str], exclude: tuple[str, ...] | list[str] = ()) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", *paths]
    command += [f"--extend-exclude={path}" for path in exclude]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_ruff_finds_nothing_in_the_swept_code() -> None:
    result = _ruff(SWEPT, exclude=NOT_YET_SWEPT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.xfail(reason="bpviz/gui, bpviz/cli.py, run files and their tests are not swept yet", strict=False)
def test_ruff_finds_nothing_anywhere() -> None:
    result = _ruff(["bpviz", "tests", "benchmarks"])
    assert result.returncode == 0, result.stdout + result.stderr
