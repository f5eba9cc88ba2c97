"""torch.compile: a watched model runs eagerly, so that every layer is measured by the same hooks.

Hooks and the function mode inside a compiled graph are either traced once
(then guarded on bpviz's own changing state, recompiling every step until
the recompile limit), or not run at all, so a compiled step can be observed
wrongly or not at all. While bpviz watches, compiled code therefore runs
eagerly (`torch.compiler.set_stance("force_eager")`, restored on detach),
whether the model was compiled before `watch` or after; a model compiled
with `torch.compile(model)` is watched through the module it wraps, under
its own layer names. Measurements are of the eager computation: the same
model, without the compiled kernels' speed.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn


def is_compiled(model: nn.Module) -> bool:
    """Whether the model, or any module in it, is a torch.compile wrapper."""
    return any(hasattr(module, "_orig_mod") for module in model.modules())


def uncompiled(model: nn.Module) -> nn.Module:
    """The eager module `torch.compile(model)` wraps, or `model` itself."""
    return getattr(model, "_orig_mod", model)


class EagerWhileWatched:
    """Forces eager execution of compiled code from `enter` to `exit`."""

    def __init__(self) -> None:
        self._entered = False

    def enter(self, model: nn.Module) -> None:
        if self._entered:
            return
        self._entered = True
        if is_compiled(model):
            warnings.warn(
                "bpviz runs this torch.compile'd model eagerly while it watches it, so that every layer is "
                "measured; it runs compiled again once bpviz detaches.",
                RuntimeWarning,
                stacklevel=4,
            )
        _STANCE.hold(self)

    def exit(self) -> None:
        if self._entered:
            self._entered = False
            _STANCE.release(self)


class _EagerStance:
    """The compiler's stance is one for the whole process: forced eager while any watcher holds it, and given
    back as it was when the last one lets go, whatever order watchers detach in."""

    def __init__(self) -> None:
        self._holders: set[object] = set()
        self._forced = None  # torch's stance object; leaving it restores the stance it replaced

    def hold(self, holder: object) -> None:
        self._holders.add(holder)
        if len(self._holders) == 1:
            self._forced = torch.compiler.set_stance("force_eager")

    def release(self, holder: object) -> None:
        self._holders.discard(holder)
        if not self._holders and self._forced is not None:
            self._forced.__exit__(None, None, None)
            self._forced = None


_STANCE = _EagerStance()
