"""torch.nn.utils.parametrizations (spectral_norm, weight_norm, orthogonal): the layer is the parametrized module.

A parametrization is a module that computes a weight (`conv.weight` runs
`conv.parametrizations.weight`); hooked like a layer it would show a weight
as an activation and hide the Conv or Linear that uses it (a layer is a call
with no layer inside). Its modules are left unhooked, so the real layer is
seen with its output, and its parameters (`weight.original`) stay its own.
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils import parametrize


def watched_modules(model: nn.Module) -> list[nn.Module]:
    """Every module of `model` except those computing a parametrized weight."""
    hidden = {
        id(inner)
        for module in model.modules()
        if parametrize.is_parametrized(module)
        for inner in module.parametrizations.modules()
    }
    return [module for module in model.modules() if id(module) not in hidden]
