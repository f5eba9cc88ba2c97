"""Reentrant activation checkpointing: its first pass runs the model under no_grad, and that is no validation.

`checkpoint(model, x, use_reentrant=True)` and `checkpoint_sequential` run
the forward once without gradients, keep only the inputs, and run it again
with gradients during backward. The first pass looks like a validation
(no grad, Dropout/BatchNorm in training mode) but is part of the training
step; its recomputation is the forward that gets measured.
"""

from __future__ import annotations

import os
import sys

import torch.utils.checkpoint

_CHECKPOINT_FILE = os.path.abspath(torch.utils.checkpoint.__file__)
_DEPTH = 12  # frames searched: the model call sits a few frames below checkpoint's own


def in_checkpoint_first_pass() -> bool:
    """Whether the running no-grad forward was started by torch.utils.checkpoint (to be recomputed later)."""
    frame = sys._getframe(1)
    for _ in range(_DEPTH):
        if frame is None:
            return False
        if os.path.abspath(frame.f_code.co_filename) == _CHECKPOINT_FILE:
            return True
        frame = frame.f_back
    return False
