"""The forward hooks bpviz places on a module, which stay with the model they were placed on.

`copy.deepcopy(model)` (an EMA or target network, `AveragedModel(model)`)
and `torch.save(model)` copy every module's hook dicts, and a hook holding
its probe would take the whole probe with it: the copy would measure on
every forward for a watcher that never reads it, keep its measurements,
outlive the original's detach, and fail to pickle. A copy of a watched
model is therefore not watched.

A `GuestPreHook` or `GuestHook` is the probe's own hook method wrapped in a
`functools.partial` (called in C, so watching costs no Python call more per
module call than the method alone). Deep-copied or pickled it becomes a
`VacatedPreHook` or `VacatedHook`: no probe, no measurement. The copy's
first forward removes the vacated hooks from its modules, from the pre-hook,
where torch loops over a snapshot of the hook dicts; a forward hook is
called from the dicts themselves when the forward raised, so the vacated
forward hook does nothing and waits for its pre-hook. The user's hooks keep
their order. A copy without even the stand-ins cannot be had from a hook:
deepcopy and pickle put whatever a hook's copy is into the copied dict.
Loading a model pickled while watched imports the stand-ins by their names
here, so those names are part of saved files.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from torch import nn
from torch.utils.hooks import RemovableHandle

# every dict of a module that holds a forward hook or a flag of one, keyed by the hook's (process-unique) id
_HOOK_DICTS = (
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
)


class VacatedPreHook:
    """A copied bpviz forward pre-hook: its first call removes the module's vacated hooks and changes nothing."""

    __slots__ = ()

    def __call__(self, module: nn.Module, *_) -> None:
        # *_: (args, kwargs), or (args) alone once an earlier vacated pre-hook of this call removed this one's flag
        vacated = [
            hook_id
            for hook_id, hook in (*module._forward_pre_hooks.items(), *module._forward_hooks.items())
            if isinstance(hook, (VacatedPreHook, VacatedHook))
        ]
        for name in _HOOK_DICTS:
            hooks = getattr(module, name)
            for hook_id in vacated:
                hooks.pop(hook_id, None)


class VacatedHook:
    """A copied bpviz forward hook: changes nothing, and goes with its pre-hook at the module's next forward."""

    __slots__ = ()

    def __call__(self, module: nn.Module, *_) -> None:
        return None


class _Guest(functools.partial):
    """A hook whose copies and pickles are its vacated stand-in, holding nothing of the probe."""

    __slots__ = ()
    vacated: type

    def __deepcopy__(self, memo: dict) -> object:
        return self.vacated()

    def __reduce__(self) -> tuple:
        return (self.vacated, ())


class GuestPreHook(_Guest):
    """The probe's forward pre-hook; copied, a `VacatedPreHook`."""

    vacated = VacatedPreHook


class GuestHook(_Guest):
    """The probe's forward hook; copied, a `VacatedHook`."""

    vacated = VacatedHook


def place(module: nn.Module, pre: Callable, post: Callable) -> list[RemovableHandle]:
    """Register `pre` (with the call's keyword arguments) and `post` (also when the forward raises) on `module`."""
    return [
        module.register_forward_pre_hook(GuestPreHook(pre), with_kwargs=True),
        module.register_forward_hook(GuestHook(post), always_call=True),
    ]
