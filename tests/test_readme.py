"""The README stays true: its test command is what CI runs, every threshold and sample is documented."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from bpviz.engine.config import Config
from bpviz.engine.load.samples import list_samples

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_ci_runs_exactly_the_readme_test_command():
    commands = [line for line in README.splitlines() if "pytest" in line and line.startswith("python3 -c")]
    assert len(commands) == 1
    assert commands[0] in (REPO / ".ci" / "run").read_text().splitlines()


def test_torch_is_installed_only_when_missing():
    for line in README.splitlines():
        if "pip install" in line and line.startswith("python3"):
            assert line.startswith('python3 -c "import torch" 2>/dev/null || pip install torch==2.13.0; ')


def test_every_threshold_is_documented_with_its_default():
    rows = dict(re.findall(r"^\| `(\w+)` \| `([^`]+)` \|", README, flags=re.MULTILINE))
    for field in dataclasses.fields(Config):
        assert field.name in rows, f"README lacks a row for Config.{field.name}"
        assert rows[field.name] == repr(field.default), f"README default of {field.name} is stale"


def test_every_sample_is_listed():
    for path, _ in list_samples():
        assert f"| `{path.name}` |" in README
