"""Mixed precision: the GradScaler a training loop uses, so gradients are judged unscaled and a skipped step is named.

fp16 training multiplies the loss by a scale (65536 at first) before the
backward pass, so every gradient the hooks see is that much too large; and
when the scaled gradients overflow, GradScaler skips the optimizer step and
lowers the scale, which is routine early in training, not an explosion or a
NaN of the model. The scaler is the one given to `watch(model, scaler=...)`,
or else the one found among the variables of the code that calls the model
(the usual `scaler = torch.amp.GradScaler()`; under autocast also an attribute
of one of them, such as a trainer's `self.scaler`), or else the one whose
`step(optimizer)` runs the optimizer: wherever a training loop keeps its
scaler (`self.scaler`, a framework's precision plugin), GradScaler.step is
on the call stack of the optimizer step. The scale each backward ran at is
kept as a device tensor and divided out on the device: no host sync.

A scaler first found at the optimizer step comes after that step's backward,
whose output gradients were measured scaled; they are unscaled when the
step is taken (`unscale_late`): their norms and sums exactly, their
histograms of log10 |g| left out for that one step (shifting the bins by
log10 of the scale would smear them).
"""

from __future__ import annotations

import sys
from types import FrameType, ModuleType

import torch
from torch.amp import GradScaler

from bpviz.engine.observe.frames import in_bpviz, in_torch
from bpviz.engine.observe.pending import GradCall

_USER_FRAMES = 3  # callers searched for a scaler: the loop, and the helpers it calls the model through
_STEP_FRAMES = 8  # frames from the optimizer's pre-step hook up to GradScaler.step


class ScaleFinder:
    """Knows the training loop's GradScaler, once given or found, and the scale of the current backward."""

    def __init__(self, scaler: GradScaler | None = None) -> None:
        self.scaler = scaler
        # Module globals already searched: each forward searching them again cost more than its statistics
        # (a notebook's globals hold hundreds of names). One set there later is found at the optimizer step.
        self._searched_globals: set[int] = set()

    def look_from_caller(self) -> None:
        """Search the calling code's variables for a GradScaler, unless one is known already.

        Called as the model's forward begins, on the user's own thread (a CUDA
        backward runs its hooks on worker threads that hold no user frames).
        """
        if self.scaler is not None:
            return
        frame: FrameType | None = sys._getframe(1)
        searched = 0
        while frame is not None and searched < _USER_FRAMES:
            if not (in_torch(frame) or in_bpviz(frame)):
                searched += 1
                module_level = frame.f_locals is frame.f_globals  # a script's loop: its locals are its globals
                spaces = [] if module_level else [(frame.f_locals, True)]  # the frame's locals first
                if id(frame.f_globals) not in self._searched_globals:
                    self._searched_globals.add(id(frame.f_globals))
                    spaces.append((frame.f_globals, module_level))
                for space, local in spaces:
                    found = next((v for v in list(space.values()) if _scaling(v)), None)
                    if found is None and local and _autocasting():  # a local object's (self.scaler)
                        found = next(_attribute_scalers(space), None)
                    if found is not None:
                        self.scaler = found
                        return
            frame = frame.f_back

    def look_from_optimizer_step(self) -> bool:
        """Find the GradScaler whose `step(optimizer)` runs the optimizer step now; True when newly found.

        Called from the optimizer's pre-step hook while no scaler is known.
        """
        if self.scaler is not None:
            return False
        frame: FrameType | None = sys._getframe(1)
        for _ in range(_STEP_FRAMES):
            if frame is None:
                return False
            owner = frame.f_locals.get("self") if in_torch(frame) else None
            if _scaling(owner):
                self.scaler = owner
                return True
            frame = frame.f_back
        return False

    def current_scale(self) -> torch.Tensor | None:
        """The scale the loss was multiplied by for this backward (a device tensor), or None without scaling."""
        scaler = self.scaler
        if scaler is None or not scaler.is_enabled():
            return None
        return getattr(scaler, "_scale", None)  # None until scaler.scale() first ran


def _scaling(value: object) -> bool:
    """Whether `value` is a GradScaler that scales (a disabled one, `enabled=False` in an fp32 run, does not)."""
    return isinstance(value, GradScaler) and value.is_enabled()


def _autocasting() -> bool:
    """Whether autocast is on (for the CPU or this process's accelerator): a GradScaler may be in use."""
    accelerator = torch.accelerator.current_accelerator()
    types = ("cpu",) if accelerator is None else ("cpu", accelerator.type)
    return any(torch.is_autocast_enabled(t) for t in types)


def _attribute_scalers(local_variables: dict):
    """GradScalers held as attributes of a frame's local objects (a trainer's `self.scaler`), one level deep.

    Only instance dictionaries are read, so no property or __getattr__ of the user's runs; classes and
    modules are passed over (their namespaces are large, and hold no training loop's scaler).
    """
    for value in list(local_variables.values()):
        if isinstance(value, (type, ModuleType)):
            continue
        try:
            attributes = object.__getattribute__(value, "__dict__")
        except (AttributeError, TypeError):
            continue
        if isinstance(attributes, dict):
            yield from (v for v in list(attributes.values()) if _scaling(v))


def optimizer_scale(optimizer: torch.optim.Optimizer) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(scale, found_inf) GradScaler gives a fused optimizer, whose gradients stay scaled; (None, None) otherwise."""
    return getattr(optimizer, "grad_scale", None), getattr(optimizer, "found_inf", None)


def unscaled(grad: torch.Tensor, inverse_scale: torch.Tensor | None) -> torch.Tensor:
    """`grad` as the unscaled loss would have made it, in float32 (the statistics widen fp16 anyway)."""
    if inverse_scale is None:
        return grad
    return grad.detach().float() * inverse_scale


def step_skipped(grad_scale: float | None, optimizer_stepped: bool, gradients_finite: bool, found_inf: bool) -> bool:
    """Whether GradScaler skipped this step's optimizer step.

    It skips by not calling `optimizer.step()` when the unscaled gradients
    hold Inf/NaN (a fused optimizer is called and told `found_inf` instead),
    so a scaled step whose gradients are not finite and that saw no
    optimizer step is a skip, not a NaN of the model.
    """
    if grad_scale is None:
        return False
    return found_inf or (not optimizer_stepped and not gradients_finite)


def unscale_late(grads: list[GradCall], inverse_scale: torch.Tensor) -> None:
    """Divide the scale out of gradients measured before the scaler was known (see the module docstring).

    Each gradient was measured in its hook: its [squared norm, sum] scale exactly; its histogram does not.
    """
    factors = torch.stack([inverse_scale * inverse_scale, inverse_scale])
    for grad in grads:
        if grad.scalars is not None:
            grad.scalars = grad.scalars * factors.to(grad.scalars.device)
            grad.histogram = None
