"""The frameworks stay optional: bpviz imports without them, and an adapter says what to install."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest


def test_importing_bpviz_imports_no_framework():
    frameworks = "('lightning', 'transformers', 'accelerate')"
    code = f"import sys, bpviz; print(sorted(m for m in {frameworks} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("adapter", "framework", "extra"),
    [
        ("lightning", "lightning.pytorch", "lightning"),
        ("transformers", "transformers", "transformers"),
    ],
)
def test_an_adapter_without_its_framework_says_what_to_install(monkeypatch, adapter, framework, extra):
    monkeypatch.setitem(sys.modules, framework, None)  # as if it were not installed
    monkeypatch.delitem(sys.modules, f"bpviz.integrations.{adapter}", raising=False)
    with pytest.raises(ImportError, match=rf'needs the \'{framework}\' package.*pip install "bpviz\[{extra}\]"'):
        importlib.import_module(f"bpviz.integrations.{adapter}")
