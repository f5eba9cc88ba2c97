"""Which backward passes are the training step's: those that compute a gradient of the model's parameters.

A step may run autograd more than once. A WGAN-GP critic takes the gradient
of its output with respect to its input (`torch.autograd.grad(..., inputs=x,
create_graph=True)`) for the penalty, then calls `loss.backward()`; a
saliency map or an input-gradient regulariser does the same. Every pass
reaches the layers' outputs and fires their gradient hooks, but only a pass
that computes gradients of the parameters (what the optimizer steps on) says
what training does to a layer. With the penalty's pass counted, a critic's
output layer showed a gradient norm of 8 (the penalty's seed of ones over 64
samples) where the loss's gradient there was 0.18.

The autograd engine tells: `torch._C._will_engine_execute_node` says whether
a node runs in the pass now running. The parameters' gradient accumulators
run in a `.backward()`; `autograd.grad(..., inputs=params)` captures them
(asking then raises, which is a yes); `autograd.grad(..., inputs=x)` leaves
them unrun. It is asked once per pass (per graph task), of the parameters'
accumulators in turn until one answers yes: for a training pass one lookup
(a view of the first parameter) and one question, for a penalty's one of
each per parameter; none per layer. The parameters and their accumulators
are looked up in the pass, not kept from attach: `model.double()` or
`.to(device)` after `watch` gives a parameter a new accumulator, and FSDP2
trains unsharded parameters it swaps in for the registered ones; a node
kept from attach would never run again (every pass would read as a
penalty's, every gradient lost). A model with no trainable parameter has
nothing to tell passes apart by, and every pass counts; a step in which no
pass trained (an adversarial example's input gradient alone) counts the
passes it had (probe.py). A checkpoint's recomputation runs its own nested
pass, which may hold no parameter; the probe counts the gradients of
tensors made there without asking (see checkpointing.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch.autograd.graph import get_gradient_edge

_NO_TASK = -1  # what the engine answers outside a backward pass


class TrainingPasses:
    """Answers, inside a gradient hook, whether the backward running computes the parameters' gradients."""

    def __init__(self, parameters: Callable[[], Iterable[torch.Tensor]]) -> None:
        self._parameters = parameters
        self._task = _NO_TASK
        self._answer = True

    def now(self) -> bool:
        """Whether the backward pass running now is a training one (True outside a pass: a hook called by hand)."""
        task = torch._C._current_graph_task_id()
        if task == _NO_TASK:
            return True
        if task != self._task:
            self._task, self._answer = task, self._computes_parameter_gradients()
        return self._answer

    def _computes_parameter_gradients(self) -> bool:
        asked = False
        for p in self._parameters():
            if not p.requires_grad:  # frozen now: not what this step trains
                continue
            try:
                # In a pass that reaches `p`, its graph holds the accumulator, and this finds that one; one
                # made here for a parameter the pass does not reach is not part of it, and answers no.
                node = get_gradient_edge(p).node
            except RuntimeError:  # a parameter autograd cannot tell about (not a plain tensor): ask the next
                continue
            asked = True
            try:
                if torch._C._will_engine_execute_node(node):
                    return True
            except RuntimeError:  # "a leaf node was passed ... running autograd.grad()": captured as an input
                return True
        return not asked
