"""What the hooks hand to the collector: one step's measurements, still on the device.

Kept apart from the hooks so the collector, the layer graph and the
forensics can read these shapes without depending on how they were caught.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.utils.hooks import RemovableHandle

from bpviz.engine.observe import stats
from bpviz.engine.observe.catalog import LayerInfo

LOOKS = 64  # later hooks and torch calls that read a weakly held first-sight tensor's version (PendingStep.watch)


@dataclass
class Stash:
    """A tensor whose statistics wait for the end of the step."""

    # detached, float32: the whole tensor, a copy of its sample once `passes` are taken, or None for a gradient
    # measured in its hook (nothing more is read of it)
    tensor: torch.Tensor | None
    version: int  # its version counter when stashed
    key: tuple[str, str]  # (layer, "forward" | "backward"): whose in-place record a change goes to
    # the passes over the whole tensor taken in the hook: (sum of squares, sum, min, max) at the full level,
    # (sum,) or () at the economy level
    passes: tuple[torch.Tensor, ...] | None = None
    # the layer's own tensor whose version is checked when `tensor` is its sample: a reference, weak for a
    # large tensor (see PendingStep.watch)
    original: Callable[[], torch.Tensor | None] | None = None
    seen_changed: bool = False  # `original` was seen changed in place while it was alive
    looks_left: int = 0  # later hooks and torch calls that still read the version of a weakly held `original`
    hist_range: tuple[float, float] | None = None  # bin over these edges (a detailed step, range known)
    keep_sample: bool = False  # a detailed step at the layer's first sight: keep values to bin on the host
    measured: bool = False  # its passes were taken in the hook, from the values it had then
    exact_sum: bool = True  # its sum is taken over every value (not at the economy level for a ReLU: see deferred)
    # the tensor's bytes as stashed, which it holds until settled (read a few times a layer: kept, not asked again)
    nbytes: int = field(init=False)

    def __post_init__(self) -> None:
        self.nbytes = self.tensor.numel() * self.tensor.element_size()

    @property
    def watched(self) -> torch.Tensor | None:
        """The tensor whose version says whether it changed in place after the hook; None when measured in
        the hook with no such question asked (only a layer's first sight asks it of a measured tensor), or
        when that tensor is gone."""
        if self.original is not None:
            return self.original()
        return None if self.measured else self.tensor

    def changed(self) -> bool:
        """Whether the tensor was changed in place after its hook, as far as was seen."""
        watched = self.watched
        return self.seen_changed or (watched is not None and watched._version != self.version)

    def check_later(self, own: torch.Tensor, hold: bool) -> bool:
        """Have the version of `own`, the tensor `tensor` was detached from, checked from now on, holding it
        when `hold`; not when `tensor` is a copy (another dtype, unscaled), which nothing changes in place.
        Whether it is checked."""
        if own.data_ptr() != self.tensor.data_ptr():
            return False
        self.original = _Held(own) if hold else weakref.ref(own)
        return True


class _Held:
    """A reference that keeps its tensor alive, called like a weak one."""

    __slots__ = ("tensor",)

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor

    def __call__(self) -> torch.Tensor:
        return self.tensor


@dataclass
class ActivationCall:
    """One call of a layer within a step, its statistics still on the device."""

    layer: LayerInfo
    shape: tuple[int, ...]
    count: int
    scalars: torch.Tensor | None  # see the layout in stats: sums, extremes, sample counts (None until settled)
    histogram: torch.Tensor | None  # over the layer's range, when it is known and the step is detailed
    sample: torch.Tensor | None  # first sight: values to bin once the range is known
    unit_positive: torch.Tensor | None
    positions_per_unit: int
    preact_max: torch.Tensor | None  # per-unit maximum of a ReLU's input
    sample_size: int  # values the zero and saturation shares were counted on
    forward: int = 0  # index of the root forward it belongs to, in PendingStep.forwards
    stash: Stash | None = None  # statistics computed when the forward returns (see deferred.py)
    exact: stats.Exact = stats.Exact.ALL  # which scalars are over every value (NaN is set on the host: collect.py)


@dataclass
class GradCall:
    """The gradient reaching one layer's output during backward."""

    layer: str
    scalars: torch.Tensor | None  # [squared norm, sum] (see collect.values_finite); None until settled
    histogram: torch.Tensor | None  # of log10 |g|, on detailed steps
    stash: Stash | None = None
    forward: int = 0  # index of the root forward whose output it flowed back to
    exact_norm: bool = True  # the squared norm is over every value (the full level, or a gradient its sample holds)


@dataclass
class ForwardFacts:
    """Mode facts of one root forward; `input_sum` stays on the device until collection."""

    grad_enabled: bool
    model_training: bool
    training_modules: tuple[str, ...]
    eval_modules: tuple[str, ...]
    input_sum: torch.Tensor | None  # non-finite when the input held NaN/Inf
    output_layers: tuple[str, ...] = ()  # layers whose output the model returned (feeding the loss directly)


@dataclass
class PendingStep:
    """Everything the hooks saw since the last collection, and the gradient hooks they placed for it.

    Bounded however long a user goes without `w.step()` (inference or saliency passes inside a
    watch): each layer keeps at most a limit of calls per step (`admit`), and so does the list of
    forwards. The gradient hooks placed on this step's outputs are removed when the step is taken
    (`release_hooks`): a tensor that outlives the step, such as a Parameter a module returns, would
    otherwise collect one more hook every step, and keep them after detach.
    """

    calls: list[ActivationCall] = field(default_factory=list)
    grads: list[GradCall] = field(default_factory=list)
    backward_order: list[str] = field(default_factory=list)
    forwards: list[ForwardFacts] = field(default_factory=list)
    param_grad_norms: dict[str, torch.Tensor] = field(default_factory=dict)
    param_grad_rows: dict[str, torch.Tensor] = field(default_factory=dict)  # lookup tables: rows with a gradient
    grads_final: bool = False  # taken where a framework declared them final; the optimizer hook keeps them
    update_base: dict[str, torch.Tensor] = field(default_factory=dict)  # parameter copies before the update
    update_norms: dict[str, torch.Tensor] = field(default_factory=dict)
    weight_norms: dict[str, torch.Tensor] = field(default_factory=dict)  # after the update, over the same slices
    grad_scale: torch.Tensor | None = None  # the GradScaler scale this step's backward ran at
    grad_unscale: torch.Tensor | None = None  # its reciprocal, applied to every gradient measured
    unscale_late: bool = False  # the scaler was found after the backward: the gradients are still scaled
    optimizer_found_inf: list[torch.Tensor] = field(default_factory=list)  # a fused optimizer's GradScaler flags
    # norms of fixed slices of the largest parameters' gradients as the last backward left them, and at the
    # optimizer step: their ratio is what the code between (clip_grad_norm_) cut the gradients by (update_tracking)
    cut_probe_backward: tuple[tuple[str, ...], list[torch.Tensor] | None] | None = None  # (parameters, norms)
    cut_probe_step: list[torch.Tensor] | None = None
    hook_seconds: float = 0.0  # bpviz's own time inside the hooks for this step (host clock)
    stashed_bytes: int = 0  # memory held by stashed tensors until the forward (or backward) is settled
    stashed_grads: list[GradCall] = field(default_factory=list)  # settled when the backward ends (deferred.py)
    backward_queued: bool = False  # the end-of-backward settling is queued on the running backward
    checked: set[tuple[str, str]] = field(default_factory=set)  # (layer, phase) whose stash was version-checked
    watching: list[Stash] = field(default_factory=list)  # first sights whose own tensor may still change
    admitted: dict[str, int] = field(default_factory=dict)  # calls measured per layer this step
    tensor_hooks: list[RemovableHandle] = field(default_factory=list)
    hooked_leaves: dict[tuple[int, str], torch.Tensor] = field(default_factory=dict)  # (tensor id, layer) -> tensor
    # layers called with an input the code between layers made: where the user's code called them (call_site.py)
    fed_by_code: dict[str, tuple | None] = field(default_factory=dict)
    # ... and those inputs' sums over the step's calls, NaN exactly when one held NaN/Inf (Probe._input_sum)
    code_inputs: dict[str, torch.Tensor] = field(default_factory=dict)
    # gradients of passes that computed no parameter's (a gradient penalty's): the step's only if none did
    other_grads: list[GradCall] = field(default_factory=list)
    other_order: list[str] = field(default_factory=list)

    def admit(self, layer: str, limit: int) -> bool:
        """Count a call of `layer`; False once it has been measured `limit` times this step."""
        seen = self.admitted.get(layer, 0)
        if seen >= limit:
            return False
        self.admitted[layer] = seen + 1
        return True

    def add_forward(self, facts: ForwardFacts, limit: int) -> None:
        """Keep a root forward's mode facts; the first `limit` of a step are enough to judge its modes."""
        if len(self.forwards) < limit:
            self.forwards.append(facts)

    def hook_gradient(self, tensor: torch.Tensor, layer: str, hook: Callable[[torch.Tensor], None]) -> None:
        """Place `hook` on the gradient reaching `tensor`, once per step for a leaf; removed by release_hooks.

        A non-leaf output is new every forward; a leaf (a Parameter returned as an output) is the same
        tensor in every forward, and its gradient arrives once per backward whatever the hooks on it.
        """
        if tensor.grad_fn is None:
            key = (id(tensor), layer)
            if key in self.hooked_leaves:
                return
            self.hooked_leaves[key] = tensor
        self.tensor_hooks.append(tensor.register_hook(hook))

    def release_hooks(self) -> None:
        """Remove every gradient hook placed for this step (its backward is over, or the probe detaches)."""
        for handle in self.tensor_hooks:
            handle.remove()
        self.tensor_hooks.clear()
        self.hooked_leaves.clear()

    def watch(self, stash: Stash, own: torch.Tensor, hold: bool) -> None:
        """Learn whether `own`, the layer's tensor measured in its hook at first sight, changes in place after it.

        `hold`: keep it to the end of the pass and read its version then, as a stashed tensor's is. A small
        one is held, like the tensors stashed in its later steps: held weakly instead, a residual block's
        gradient is the buffer autograd adds the other branch's into (it reuses a gradient nothing else
        holds), a change that holding it prevents. A large one is held by weak reference: held to the end of
        the forward (or backward), every large output of a first step stayed in memory at once, a third
        more than a 12-block CNN's own peak. One that is gone can no longer change; one that is changed in
        place is changed by the code soon after its hook (an in-place ReLU after a Linear, `out += x`,
        `logits.div_(t)`), so the next `LOOKS` hooks and torch calls read its version while it is alive
        (`look_for_changes`), and the end of the pass once more if it is still alive then.
        """
        if stash.check_later(own, hold) and not hold:
            stash.looks_left = LOOKS
            self.watching.append(stash)

    def look_for_changes(self) -> None:
        """Read the versions of the weakly held first-sight tensors (see `watch`); a bounded number of times
        each, so that a first step's cost grows with its layers, not with their square."""
        self.watching = [s for s in self.watching if not _seen_or_gone(s)]

    def mark(self) -> tuple:
        """Where the step stands now, for `rollback`."""
        counts = len(self.calls), len(self.grads), len(self.forwards)
        return (*counts, dict(self.admitted), dict(self.fed_by_code), dict(self.code_inputs))

    def rollback(self, mark: tuple) -> None:
        """Forget what a forward added since `mark`: one that raised, caught by the user, is no part of the step
        (nor are the inputs its code made: a retry's NaN was blamed on the failed forward's)."""
        calls, grads, forwards, self.admitted, self.fed_by_code, self.code_inputs = mark
        del self.calls[calls:], self.grads[grads:], self.forwards[forwards:]


def _seen_or_gone(stash: Stash) -> bool:
    """Note a change of the stash's tensor; True once there is nothing more to learn here (it changed, it is
    gone, or its looks are spent)."""
    if stash.original() is None:
        return True
    stash.seen_changed = stash.changed()
    stash.looks_left -= 1
    return stash.seen_changed or stash.looks_left <= 0
