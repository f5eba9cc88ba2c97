"""Which forwards of a step were trained through: a validation run with grad enabled is not part of the step.

A validation loop with `model.eval()` but without `torch.no_grad()` is
correct code; its forwards run with gradients enabled, and only the
absence of a backward tells them from training. A forward none of whose
layers received a gradient is therefore not counted in the step's layer
statistics, nor judged as training. When no forward of the step got a
backward (forward-only monitoring, or a step closed before backward), every
forward is kept, since there is nothing else to show.
"""

from __future__ import annotations

from dataclasses import replace

from bpviz.engine.observe.pending import PendingStep


def trained_forwards(pending: PendingStep) -> set[int]:
    """Indices (in pending.forwards) of the forwards a gradient flowed back to."""
    return {grad.forward for grad in pending.grads}


def keep_trained(pending: PendingStep) -> PendingStep:
    """The step without the activation calls of forwards no backward reached, when some forward had one."""
    trained = trained_forwards(pending)
    if not trained or all(call.forward in trained for call in pending.calls):  # the usual step: nothing to drop
        return pending
    return replace(pending, calls=[call for call in pending.calls if call.forward in trained])
