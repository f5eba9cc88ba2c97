"""Activation checkpointing: a layer's values are measured in the forward pass, its gradients where they flow.

`torch.utils.checkpoint` runs a segment of the model twice: once in the
forward pass and again during backward, to rebuild the activations it did
not keep. The forward pass is measured, whatever its kind: it runs in the
model's own order and its values are those the recomputation repeats (torch
restores the RNG state, so Dropout draws the same masks). That pass looks
like a validation when it runs under no_grad (reentrant checkpointing,
`checkpoint_sequential`, Hugging Face's `gradient_checkpointing_enable()`),
with Dropout/BatchNorm in training mode, but it is part of the training step.

The recomputation measures nothing again; it only places the gradient hooks.
With reentrant checkpointing the gradients flow through the recomputed
tensors alone (the first pass kept none that need a gradient); without it
they flow through the first pass's, and the hooks on the recomputed ones
never fire. Either way each layer gets its values once and its gradient once.
"""

from __future__ import annotations

import os
import sys
from enum import Enum

import torch
import torch.utils.checkpoint

_CHECKPOINT_FILE = os.path.abspath(torch.utils.checkpoint.__file__)
_DEPTH = 12  # frames searched: the model call sits a few frames below checkpoint's own


class CheckpointPass(Enum):
    NONE = "none"  # not started by torch.utils.checkpoint
    FORWARD = "forward"  # its forward pass (no_grad when reentrant): measured
    RECOMPUTE = "recompute"  # its recomputation during backward: gradients only


_in_checkpoint_file: dict[str, bool] = {}  # a code object's file name -> whether it is torch.utils.checkpoint


def checkpoint_pass() -> CheckpointPass:
    """Which pass of torch.utils.checkpoint, if any, the forward beginning now belongs to.

    Asked at every root forward: each file name is resolved once.
    """
    frame = sys._getframe(1)
    for _ in range(_DEPTH):
        if frame is None:
            return CheckpointPass.NONE
        name = frame.f_code.co_filename
        ours = _in_checkpoint_file.get(name)
        if ours is None:
            ours = _in_checkpoint_file[name] = os.path.abspath(name) == _CHECKPOINT_FILE
        if ours:
            in_backward = torch._C._current_graph_task_id() != -1  # autograd's engine runs a backward here
            return CheckpointPass.RECOMPUTE if in_backward else CheckpointPass.FORWARD
        frame = frame.f_back
    return CheckpointPass.NONE
