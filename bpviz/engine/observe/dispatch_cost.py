"""What it costs torch to call into bpviz, which no clock inside bpviz's own code can see.

bpviz times its hooks from their first line to their last; what happens
before the first line is torch's work on bpviz's behalf: a module with hooks
takes the slow call path and calls into Python twice, a tensor hook makes
the autograd engine call into Python, and under the function mode every
torch function of the forward is routed through Python. These are fixed
costs per event, measured once per process on tiny inputs (the smallest of
several repeats, so a busy machine inflates them little) and added to
bpviz's measured time per event, so that the share bpviz reports is the
share it adds to the step.
"""

from __future__ import annotations

import functools
import time
from typing import NamedTuple

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

_CALLS = 50  # events per timing
_REPEATS = 9  # timings of each side, interleaved; the smallest of each is kept


class DispatchCosts(NamedTuple):
    """Seconds torch spends per event calling bpviz's code, beyond what bpviz times itself."""

    module_call: float  # one call of a module carrying a forward pre-hook and an always-call forward hook
    tensor_hook: float  # one gradient hook called by the autograd engine
    mode_call: float  # one torch function called under a function mode


class _Passthrough(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


class _Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _extra(with_bpviz, without) -> float:
    """Seconds per event that `with_bpviz()` takes beyond `without()` (each runs `_CALLS` events).

    The two are timed in turn and the smallest timing of each is kept, so load on the machine,
    which only ever adds time, drifts out of both alike.
    """
    best = [float("inf"), float("inf")]
    for _ in range(_REPEATS):
        for side, run in enumerate((with_bpviz, without)):
            started = time.perf_counter()
            run()
            best[side] = min(best[side], time.perf_counter() - started)
    return max(0.0, (best[0] - best[1]) / _CALLS)


def _module_calls(module: nn.Module, x: torch.Tensor) -> None:
    for _ in range(_CALLS):
        module(x)


def _module_call_cost() -> float:
    x = torch.zeros(1)
    plain, hooked = _Identity(), _Identity()
    hooked.register_forward_pre_hook(lambda module, args, kwargs: None, with_kwargs=True)
    hooked.register_forward_hook(lambda module, args, output: None, always_call=True)
    return _extra(lambda: _module_calls(hooked, x), lambda: _module_calls(plain, x))


def _backward_through(called: bool) -> None:
    """A backward through `_CALLS` nodes, each output hooked; the hooks removed before it unless `called`."""
    x = torch.zeros(1, requires_grad=True)
    y, handles = x, []
    for _ in range(_CALLS):
        y = y * 1.0
        handles.append(y.register_hook(lambda grad: None))
    if not called:
        for handle in handles:
            handle.remove()
    y.backward()
    if called:
        for handle in handles:
            handle.remove()


def _tensor_hook_cost() -> float:
    # placing and removing a hook is timed by bpviz itself: both sides do it, only the calls differ
    return _extra(lambda: _backward_through(True), lambda: _backward_through(False))


def _adds(x: torch.Tensor) -> None:
    for _ in range(_CALLS):
        torch.add(x, x)


def _routed_adds(x: torch.Tensor) -> None:
    with _Passthrough():
        _adds(x)


def _mode_call_cost() -> float:
    x = torch.zeros(1)
    return _extra(lambda: _routed_adds(x), lambda: _adds(x))


@functools.cache
def dispatch_costs() -> DispatchCosts:
    """The per-event costs, measured on first use (some tens of milliseconds) and kept for the process."""
    with torch.enable_grad():
        return DispatchCosts(_module_call_cost(), _tensor_hook_cost(), _mode_call_cost())
