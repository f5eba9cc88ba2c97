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

from bpviz.engine.observe.frames import TORCH_DIR, in_bpviz, in_torch

_CALL_MACHINERY = os.path.join(TORCH_DIR, "nn", "modules", "module.py")


def call_site(frame: FrameType | None) -> tuple | None:
    """(code, instruction) of the code that made the call seen from `frame`, or None inside torch itself."""
    while frame is not None and (frame.f_code.co_filename == _CALL_MACHINERY or in_bpviz(frame)):
        frame = frame.f_back
    if frame is None or in_torch(frame):
        return None
    return frame.f_code, frame.f_lasti
