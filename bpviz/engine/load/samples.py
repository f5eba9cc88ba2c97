"""The sample experiments shipped in `sample_models/`, for the start page and the README.

Docstrings are read with `ast`, never by importing: listing the samples must
not build models or run anyone's code.
"""

from __future__ import annotations

import ast
from pathlib import Path

SAMPLES_DIR = Path(__file__).resolve().parents[3] / "sample_models"


def list_samples(folder: Path = SAMPLES_DIR) -> list[tuple[Path, str]]:
    """(path, first docstring line) of every sample experiment, by file name; private `_*.py` files are skipped."""
    if not folder.is_dir():
        return []
    return [(path, _headline(path)) for path in sorted(folder.glob("*.py")) if not path.name.startswith("_")]


def _headline(path: Path) -> str:
    """The first line of the module docstring, or the file's stem when it has none or does not parse."""
    try:
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    except (SyntaxError, UnicodeDecodeError, OSError):
        docstring = None
    return docstring.strip().splitlines()[0] if docstring and docstring.strip() else path.stem
