"""Weights into the open experiment: File > Load weights…, and a state dict opened like a model.

A state dict is data, not code: it is recognised with `weights_only=True` before
any trust prompt, and loaded the way `--weights` does, by rebuilding the open
experiment with it (the same seed). Keys that do not fit are named in the error
panel, and the model that was open stays open.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from PySide6.QtWidgets import QMainWindow

from bpviz.engine.load.checkpoint import holds_state_dict
from bpviz.engine.user_error import UserCodeError

# Typed as QMainWindow, not MainWindow: the main window imports this module, and must be the only one of the two
# that imports the other. `window` is the main window (its controller, dialogs, error panel).


def open_state_dict(window: QMainWindow, path: Path) -> bool | None:
    """Handle `path` if it is a state dict: offer it to the open experiment. None when it is no state dict."""
    if not holds_state_dict(path):
        return None
    request = window.controller.request
    if request is None:
        window.error_panel.show_error(
            UserCodeError(
                f"{path.name} holds weights (a state dict), not a model",
                why="a state dict has no architecture: open the experiment file (.py) whose build() makes the model, "
                f"then File > Load weights… (or: bpviz EXPERIMENT.py --weights {path.name})",
                where=str(path),
            )
        )
        return False
    if not window.dialogs.confirm_weights(window, path, request.path):
        return False
    load_weights(window, path)
    return True


def load_weights(window: QMainWindow, path: Path) -> None:
    """Rebuild the open experiment with the weights in `path` (a state dict), as `--weights` does."""
    request = window.controller.request
    if request is None:
        return
    window.start_load(
        dataclasses.replace(request, weights=str(path)), f"Loading weights from {path.name} into {request.path.name}…"
    )


def ask_and_load(window: QMainWindow) -> None:
    """File > Load weights…"""
    path = window.dialogs.open_weights(window, window.settings.last_directory())
    if path is not None:
        load_weights(window, path)
