"""Telling the user's code from torch's and bpviz's own on the Python call stack.

Observations that need the user's frame behind a hook share these tests:
the place a layer is called from (call_site) and the GradScaler among the
training loop's variables (amp).
"""

from __future__ import annotations

import os
from types import FrameType

import torch

TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
BPVIZ_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))) + os.sep


def in_torch(frame: FrameType) -> bool:
    """Whether the frame runs torch's own code."""
    return frame.f_code.co_filename.startswith(TORCH_DIR)


def in_bpviz(frame: FrameType) -> bool:
    """Whether the frame runs bpviz's own code (its hooks, its stepper)."""
    return frame.f_code.co_filename.startswith(BPVIZ_DIR)
