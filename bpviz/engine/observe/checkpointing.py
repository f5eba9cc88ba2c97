"""Activation checkpointing: each forward is measured once, and in the model's own forward order.

`torch.utils.checkpoint` runs a segment of the model twice: once in the
forward pass and again during backward, to rebuild the activations it did
not keep. Which of the two passes is the one to measure depends on the kind:

* reentrant (`checkpoint(..., use_reentrant=True)`, `checkpoint_sequential`):
  the first pass runs under no_grad (it looks like a validation with
  Dropout/BatchNorm in training mode, but is part of the training step) and
  only the recomputation in backward has gradients: that one is measured;
* non-reentrant (`use_reentrant=False`): the first pass has gradients and is
  measured; the recomputation (often cut short by torch once the tensors it
  needs exist) would count every layer twice, so it is not.

Backward recomputes the segments last first, so the measured calls of a
reentrant step arrive in reverse segment order. Every root forward of a step
therefore gets a *position*: its place among the step's forwards as they were
called, with a recomputation taking the place of the first pass it repeats
(the earliest one not yet repeated that began at the same module). Layers are
ordered by position, and so read in the model's forward order.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch
import torch.utils.checkpoint
from torch import nn

_CHECKPOINT_FILE = os.path.abspath(torch.utils.checkpoint.__file__)
_DEPTH = 12  # frames searched: the model call sits a few frames below checkpoint's own


def in_checkpoint() -> bool:
    """Whether the running forward was started by torch.utils.checkpoint (a first pass or a recomputation)."""
    frame = sys._getframe(1)
    for _ in range(_DEPTH):
        if frame is None:
            return False
        if os.path.abspath(frame.f_code.co_filename) == _CHECKPOINT_FILE:
            return True
        frame = frame.f_back
    return False


def in_backward() -> bool:
    """Whether autograd's engine is running a backward on this thread (where checkpoint recomputes)."""
    return torch._C._current_graph_task_id() != -1


@dataclass
class _FirstPass:
    module: nn.Module  # the module the checkpointed forward began at
    position: int
    measured: bool  # it had gradients (non-reentrant): its recomputation is not measured again
    repeated: bool = False


@dataclass(frozen=True)
class ForwardPlace:
    """Where one root forward stands in its step, and whether it is to be measured."""

    position: int
    measure: bool
    # No forward of its own: a checkpoint's no-grad first pass (no validation; measured when recomputed),
    # or the recomputation of a pass measured already. Neither counts among the step's forwards.
    repeat: bool


class ForwardPositions:
    """Gives each root forward of a step its position (see the module docstring); one per step."""

    def __init__(self) -> None:
        self._next = 0
        self._first_passes: list[_FirstPass] = []

    def place(self, module: nn.Module, grad_enabled: bool) -> ForwardPlace:
        """The place of a root forward beginning at `module` now."""
        if not in_checkpoint():
            return ForwardPlace(self._take(), grad_enabled, False)
        if in_backward():  # a recomputation: it stands where the pass it repeats stood
            first = next((p for p in self._first_passes if p.module is module and not p.repeated), None)
            if first is not None:
                first.repeated = True
                return ForwardPlace(first.position, grad_enabled and not first.measured, first.measured)
            return ForwardPlace(self._take(), grad_enabled, False)
        position = self._take()
        self._first_passes.append(_FirstPass(module, position, grad_enabled))
        return ForwardPlace(position, grad_enabled, not grad_enabled)

    def _take(self) -> int:
        self._next += 1
        return self._next - 1
