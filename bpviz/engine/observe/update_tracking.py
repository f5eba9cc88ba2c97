"""Gradient and update norms of each parameter, taken around every optimizer step.

Global optimizer hooks see any optimizer the user made, so `watch(model)`
needs no handle on it. Only parameters of the watched model are measured.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

from bpviz.engine.distributed.context import local_shard, rank_and_world
from bpviz.engine.observe import stats
from bpviz.engine.observe.amp import optimizer_scale
from bpviz.engine.observe.grad_norms import grad_norms, touched_rows
from bpviz.engine.observe.guard import MeasurementGuard
from bpviz.engine.observe.pending import PendingStep


class ParameterSlices:
    """The fixed sampled slice of each parameter (all of it when small), made once and reused as a view.

    Copying every weight before each optimizer step costs as much as the
    step itself; the norm of the change over a fixed slice, scaled by
    `scale`, estimates ||dW|| closely for a fraction. The slice is blocks of
    a cache line's length spread evenly over the parameter (see
    `block_sample`): copying, subtracting and norming it reads only those
    lines, where single elements at a stride read every line of the weight.
    The slices are views, so in-place updates show through; slicing fifty
    parameters anew each step cost more than the norms. A parameter whose
    storage was swapped (`param.data = ...`) is sliced again. A weight in
    another memory layout (channels_last convolutions) is sliced in the
    order it lies in memory: flattening it in its logical order would copy
    it, and a copy never sees the update.
    """

    def __init__(self, max_values: int) -> None:
        self.max_values = max_values
        self._cache: dict[int, tuple[int, torch.Tensor, float]] = {}  # id -> (storage, slice, scale)

    def of(self, param: torch.Tensor) -> torch.Tensor:
        """The slice of `param` (of this rank's shard, under FSDP2), a view on its current storage."""
        return self._slice(param)[1]

    def scale(self, param: torch.Tensor) -> float:
        """Factor from a norm over the slice to the whole parameter's estimate."""
        return self._slice(param)[2]

    def _slice(self, param: torch.Tensor) -> tuple[int, torch.Tensor, float]:
        param = local_shard(param)
        ptr = param.data_ptr()
        hit = self._cache.get(id(param))
        if hit is None or hit[0] != ptr:
            part = block_sample(_in_memory_order(param.detach()), self.max_values)
            hit = self._cache[id(param)] = (ptr, part, math.sqrt(param.numel() / max(1, part.numel())))
        return hit


_BLOCK_BYTES = 64  # a cache line
_CUT_PROBES = 4  # parameters whose gradient slices are compared between the backward's end and the step


def block_sample(tensor: torch.Tensor, max_values: int) -> torch.Tensor:
    """A view of about `max_values` elements of `tensor`, in blocks of a cache line each, one block every
    `sample_stride` elements: the stride shares no factor with any dimension, so the blocks sweep every
    row and column. A tensor whose memory is not one dense run gets the strided sample instead."""
    if tensor.numel() <= max_values:
        return tensor.reshape(-1)
    block = max(1, _BLOCK_BYTES // tensor.element_size())
    if not tensor.is_contiguous() or max_values < block:
        return stats.histogram_sample(tensor, max_values)
    stride = max(block, stats.sample_stride(tuple(tensor.shape), max_values // block))
    count = (tensor.numel() - block) // stride + 1
    return tensor.reshape(-1).as_strided((count, block), (stride, 1))


def _dense(grad: torch.Tensor | None) -> bool:
    return grad is not None and grad.layout == torch.strided


def _has_closure(args: tuple, kwargs: dict) -> bool:
    """Whether `optimizer.step` was given a closure that computes the loss and gradients inside it."""
    return callable(kwargs.get("closure")) or any(callable(a) for a in args)


def _in_memory_order(tensor: torch.Tensor) -> torch.Tensor:
    """A view of `tensor` whose dimensions run in memory order, so flattening it copies nothing."""
    if tensor.is_contiguous() or tensor.dim() < 2:
        return tensor
    order = sorted(range(tensor.dim()), key=lambda d: (tensor.stride(d), tensor.shape[d]), reverse=True)
    permuted = tensor.permute(order)
    return permuted if permuted.is_contiguous() else tensor


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
        lookups: frozenset[str] = frozenset(),
        on_step: Callable[[], None] | None = None,
    ) -> None:
        self._param_ids = {id(p): name for name, p in params.items()}
        self._params = params
        # clip_grad_norm_ scales every gradient by one factor: the largest parameters' slices tell it
        self._by_size = sorted(params, key=lambda n: params[n].numel(), reverse=True)
        self._on_step = on_step  # told of each optimizer step first (the probe looks for a GradScaler there)
        self._lookups = lookups  # lookup-table weights: their touched rows are counted (see grad_norms)
        self._slices = slices
        self._pending = pending
        self._guard = guard

    def backward_ended(self) -> None:
        """Keep the probe slices' norms of the gradients as this backward leaves them (the last backward of a
        step, with accumulation, leaves the step's). Not under several ranks: their averaging changes the
        gradients between backward and step too, by no one factor."""
        if rank_and_world()[1] > 1:
            return
        with_grad = (n for n in self._by_size if _dense(self._params[n].grad))  # a frozen embedding has none
        names = tuple(itertools.islice(with_grad, _CUT_PROBES))
        with torch._C.DisableTorchFunction(), torch.no_grad():
            self._pending().cut_probe_backward = (names, self._probe_norms(names)) if names else None

    def _probe_norms(self, names: tuple[str, ...]) -> list[torch.Tensor] | None:
        """The probe slices' norms of these parameters' gradients now; None when one has none any more."""
        grads = [self._params[n].grad for n in names]
        if not all(_dense(g) for g in grads):
            return None
        samples = [block_sample(local_shard(g).detach(), self._slices.max_values) for g in grads]
        return list(torch._foreach_norm(samples, 2, dtype=torch.float32))

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
        with self._timed(), self._guard.catch("final gradients"):
            self._measure_before(optimizer, closure=False, final=True)
            self._pending().grads_final = True

    @contextlib.contextmanager
    def _timed(self) -> Iterator[None]:
        """Count the time of an optimizer hook as bpviz's own, like that of the layer hooks."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self._pending().hook_seconds += time.perf_counter() - started

    def _before(self, optimizer, args, kwargs) -> None:
        with self._timed(), self._guard.catch("optimizer step"):
            if self._on_step is not None and self._owned(optimizer):
                self._on_step()
            self._measure_before(optimizer, _has_closure(args, kwargs))

    def _after(self, optimizer, args, kwargs) -> None:
        with self._timed(), self._guard.catch("optimizer step"):
            if _has_closure(args, kwargs):  # LBFGS-style: the closure ran inside step(), the gradients are new
                with torch._C.DisableTorchFunction(), torch.no_grad():
                    self._measure_grads(optimizer, self._owned(optimizer), self._pending())
            self._measure_after(optimizer)

    def _measure_before(self, optimizer: torch.optim.Optimizer, closure: bool, final: bool = False) -> None:
        owned = self._owned(optimizer)
        if not owned:
            return
        pending = self._pending()
        slices = self._slices
        with torch._C.DisableTorchFunction(), torch.no_grad():
            if not closure:
                self._measure_grads(optimizer, owned, pending, final)
            fresh = [(n, p) for n, p in owned if n not in pending.update_base]
            if fresh:
                copies = torch._foreach_mul([slices.of(p) for _, p in fresh], 1.0)
                pending.update_base.update(zip((n for n, _ in fresh), copies))

    def _measure_grads(
        self, optimizer: torch.optim.Optimizer, owned: list, pending: PendingStep, final: bool = False
    ) -> None:
        """The gradients the step uses: read before it, or after it when a closure computed them inside."""
        if pending.grads_final and not final:
            return  # a framework already took them where they were final (before clipping, or a skipped step)
        with_grad = [(n, local_shard(p.grad)) for n, p in owned if p.grad is not None]
        if not with_grad:
            return
        norms = grad_norms([g for _, g in with_grad])
        probe = self._probe_norms(pending.cut_probe_backward[0]) if pending.cut_probe_backward is not None else None
        scale, found_inf = optimizer_scale(optimizer)
        if scale is not None:  # GradScaler leaves a fused optimizer's gradients scaled
            norms = [norm / scale for norm in norms]
            probe = [norm / scale for norm in probe] if probe is not None else None
            pending.optimizer_found_inf.append(found_inf)
        pending.cut_probe_step = probe
        pending.param_grad_norms.update(zip((n for n, _ in with_grad), norms))
        pending.param_grad_rows.update((n, touched_rows(g)) for n, g in with_grad if n in self._lookups)

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
