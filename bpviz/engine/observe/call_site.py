"""Where in the user's code a layer is called: one place called in a loop is one layer, not one per time step.

An LSTMCell decoder calls the same cell once per time step from one line;
counted per call that is hundreds of layers (`cell#199`). The place is the
calling frame's code and instruction (two calls on one line differ, the
same call in a loop does not). Calls made by torch's own containers
(Sequential, ModuleList iteration) have no such place: the same module at
two positions of a Sequential stays two layers.
"""
from __future__ import annotations

import os
from types import FrameType

import torch

_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
_BPVIZ_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_CALL_MACHINERY = os.path.join(_TORCH_DIR, "nn", "modules", "module.py")


def call_site(frame: FrameType | None) -> tuple | None:
    """(code, instruction) of the code that made the call seen from `frame`, or None inside torch itself."""
    while frame is not None and (
        frame.f_code.co_filename == _CALL_MACHINERY or frame.f_code.co_filename.startswith(_BPVIZ_DIR)
    ):
        frame = frame.f_back
    if frame is None or frame.f_code.co_filename.startswith(_TORCH_DIR):
        return None
    return frame.f_code, frame.f_lasti
