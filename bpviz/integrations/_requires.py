"""The one clear error a framework adapter gives when its framework is not installed."""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, extra: str) -> ModuleType:
    """Import `module`, or say which extra installs it (bpviz itself never needs it)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"bpviz.integrations.{extra} needs the '{module}' package, which is not installed. "
            f'Install it with: pip install "bpviz[{extra}]"'
        ) from exc
