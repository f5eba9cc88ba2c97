"""Gradient and update norms of each parameter, taken around every optimizer step.

Global optimizer hooks see any optimizer the user made, so `watch(model)`
needs no handle on it. Only parameters of the watched model are measured.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

from bpviz.engine.distributed.context import local_shard
from bpviz.engine.observe import stats
from bpviz.engine.observe.guard import MeasurementGuard
from bpviz.engine.observe.pending import PendingStep


class ParameterSlices:
    """The fixed strided slice of each parameter (all of it when small), made once and reused as a view.

    Copying every weight before each optimizer step costs as much as the
    step itself; the norm of the change over a fixed strided slice, scaled
    by `scale`, estimates ||dW|| closely for a fraction. The slices are views,
    so in-place updates show through; slicing fifty parameters anew each step
    cost more than the norms. A parameter whose storage was swapped
    (`param.data = ...`) is sliced again.
    """

    def __init__(self, max_values: int) -> None:
        self._max_values = max_values
        self._cache: dict[int, tuple[int, torch.Tensor]] = {}

    def of(self, param: torch.Tensor) -> torch.Tensor:
        """The slice of `param` (of this rank's shard, under FSDP2), a view on its current storage."""
        param = local_shard(param)
        ptr = param.data_ptr()
        hit = self._cache.get(id(param))
        if hit is None or hit[0] != ptr:
            hit = self._cache[id(param)] = (ptr, stats.histogram_sample(param.detach(), self._max_values))
        return hit[1]

    def scale(self, param: torch.Tensor) -> float:
        """Factor from a norm over the slice to the whole parameter's estimate."""
        return math.sqrt(local_shard(param).numel() / self.of(param).numel())


class UpdateTracker:
    """Writes parameter gradient norms and ||dW|| estimates into the current pending step.

    `pending` is a getter, not a step: the probe starts a new PendingStep at
    every collection, and the optimizer hooks must write into the current one.
    """

    def __init__(
        self,
        params: dict[str, nn.Parameter],
        slices: ParameterSlices,
        pending: Callable[[], PendingStep],
        guard: MeasurementGuard,
    ) -> None:
        self._param_ids = {id(p): name for name, p in params.items()}
        self._slices = slices
        self._pending = pending
        self._guard = guard

    def attach(self) -> list:
        """Register the optimizer hooks; returns their handles for the probe to remove."""
        return [register_optimizer_step_pre_hook(self._before), register_optimizer_step_post_hook(self._after)]

    def _owned(self, optimizer: torch.optim.Optimizer) -> list[tuple[str, torch.Tensor]]:
        return [
            (self._param_ids[id(p)], p)
            for group in optimizer.param_groups
            for p in group["params"]
            if id(p) in self._param_ids
        ]

    def measure_final(self, optimizer: torch.optim.Optimizer) -> None:
        """Take the gradient norms now, where a training framework says they are final (accumulated, unscaled).

        The optimizer's own pre-step hook then keeps them: it may come after
        gradient clipping, or never (a GradScaler skipping an Inf step).
        """
        with self._guard.catch("final gradients"):
            self._measure_before(optimizer, final=True)
            self._pending().grads_final = True

    def _before(self, optimizer, args, kwargs) -> None:
        with self._guard.catch("optimizer step"):
            self._measure_before(optimizer)

    def _after(self, optimizer, args, kwargs) -> None:
        with self._guard.catch("optimizer step"):
            self._measure_after(optimizer)

    def _measure_before(self, optimizer: torch.optim.Optimizer, final: bool = False) -> None:
        owned = self._owned(optimizer)
        if not owned:
            return
        pending = self._pending()
        slices = self._slices
        with torch._C.DisableTorchFunction(), torch.no_grad():
            keep = pending.grads_final and not final  # a framework already took them where they were final
            with_grad = [(n, local_shard(p.grad)) for n, p in owned if p.grad is not None and not keep]
            if with_grad:
                norms = torch._foreach_norm([g for _, g in with_grad])
                pending.param_grad_norms.update(zip((n for n, _ in with_grad), norms))
            fresh = [(n, p) for n, p in owned if n not in pending.update_base]
            if fresh:
                copies = torch._foreach_mul([slices.of(p) for _, p in fresh], 1.0)
                pending.update_base.update(zip((n for n, _ in fresh), copies))

    def _measure_after(self, optimizer: torch.optim.Optimizer) -> None:
        pending = self._pending()
        owned = [(n, p) for n, p in self._owned(optimizer) if n in pending.update_base]
        if not owned:
            return
        slices = self._slices
        with torch._C.DisableTorchFunction(), torch.no_grad():
            after = [slices.of(p) for _, p in owned]
            diffs = torch._foreach_sub(after, [pending.update_base[n] for n, _ in owned])
            norms = torch._foreach_norm([*diffs, *after])  # ||dW|| and ||W|| in one call
            names = [n for n, _ in owned]
            pending.update_norms.update(zip(names, norms[: len(names)]))
            pending.weight_norms.update(zip(names, norms[len(names) :]))
