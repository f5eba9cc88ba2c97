"""Which modules and functions are activations, of which family, and which modules change with train/eval.

One table for the probes (what to measure), the rules (what to judge) and
the views (how to label), so the three never disagree.
"""

from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F
from torch import nn

RELU_FAMILY = "relu"  # the families whose units can die: no positive output means no gradient
# ReLU-family layers (by type name) that clip from above: an input of +inf comes out finite
CLIPPED_RELU_TYPES = frozenset({"ReLU6", "relu6"})

# Families with hard output bounds, for saturation: (lower, upper).
BOUNDED = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0), "hardsigmoid": (0.0, 1.0)}

MODULE_FAMILY: dict[type[nn.Module], str] = {
    nn.ReLU: RELU_FAMILY,
    nn.ReLU6: RELU_FAMILY,
    nn.Sigmoid: "sigmoid",
    nn.Tanh: "tanh",
    nn.Hardtanh: "hardtanh",
    nn.Hardsigmoid: "hardsigmoid",
    nn.GELU: "gelu",
    nn.LeakyReLU: "leaky_relu",
    nn.ELU: "elu",
    nn.SELU: "selu",
    nn.SiLU: "silu",
    nn.Mish: "mish",
    nn.Softplus: "softplus",
    nn.Hardswish: "hardswish",
    nn.Softmax: "softmax",
}

# Functional activations caught by the function mode, by the object torch hands to __torch_function__.
FUNCTIONAL_FAMILY: dict[object, str] = {
    F.relu: RELU_FAMILY,
    F.relu_: RELU_FAMILY,
    torch.relu: RELU_FAMILY,
    torch.relu_: RELU_FAMILY,
    torch.Tensor.relu: RELU_FAMILY,
    torch.Tensor.relu_: RELU_FAMILY,
    F.relu6: RELU_FAMILY,
    torch.sigmoid: "sigmoid",
    torch.Tensor.sigmoid: "sigmoid",
    torch.Tensor.sigmoid_: "sigmoid",
    F.sigmoid: "sigmoid",
    torch.tanh: "tanh",
    torch.Tensor.tanh: "tanh",
    torch.Tensor.tanh_: "tanh",
    F.tanh: "tanh",
    F.hardtanh: "hardtanh",
    F.hardtanh_: "hardtanh",
    F.hardsigmoid: "hardsigmoid",
    F.gelu: "gelu",
    F.leaky_relu: "leaky_relu",
    F.leaky_relu_: "leaky_relu",
    F.elu: "elu",
    F.selu: "selu",
    F.silu: "silu",
    F.mish: "mish",
    F.softplus: "softplus",
    F.hardswish: "hardswish",
}

_DROPOUT_RATES = ("dropout", "attention_dropout")  # a module's own dropout probability, by its usual names


def mode_candidate(module: nn.Module) -> bool:
    """Whether `module` may compute differently in train() and eval() (see `mode_sensitive`), told by its kind."""
    if isinstance(module, (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm)):
        return True
    return any(_rate(module, name) is not None for name in _DROPOUT_RATES) and not _drops_through_children(module)


def mode_sensitive(module: nn.Module) -> bool:
    """Whether `module` computes differently in train() and eval() as it is now: the subject of the mode findings.

    Dropout that drops (p > 0: Hugging Face configs default to 0.0, which drops nothing in either mode);
    BatchNorm that keeps running statistics (without them it normalises by the batch in both modes); and
    a module that applies dropout inside its own forward, told by a probability above zero under its usual
    name (nn.MultiheadAttention, attention blocks of Llama-style models, nn.LSTM/GRU/RNN between their
    layers), unless Dropout modules inside it apply that rate (a model keeping its config's rate): those
    are counted themselves. Asked at every forward: a schedule may change a rate.
    """
    if isinstance(module, nn.modules.dropout._DropoutNd):
        return module.p > 0
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return module.track_running_stats
    if isinstance(module, nn.RNNBase):  # dropout between stacked layers: none with one layer
        return module.dropout > 0 and module.num_layers > 1
    return any((_rate(module, name) or 0.0) > 0 for name in _DROPOUT_RATES)


def _rate(module: nn.Module, name: str) -> float | None:
    """The module's dropout probability under `name` when it is a number (not a submodule or a flag)."""
    value = getattr(module, name, None)
    return float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else None


def _drops_through_children(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.dropout._DropoutNd) for m in module.modules() if m is not module)


def functional_families() -> dict[object, str]:
    """FUNCTIONAL_FAMILY, plus whatever now stands in torch's namespaces under those functions' names.

    A file that wraps `F.relu` (to log, to count) replaces the name torch's own
    `relu` looks itself up by, so the function mode is handed the wrapper, not
    F.relu: recognised by identity alone, that layer would vanish from the table
    and its dead units would raise no finding. Read when a probe attaches.
    """
    families = dict(FUNCTIONAL_FAMILY)
    by_name = {functional_name(func): family for func, family in FUNCTIONAL_FAMILY.items()}
    for owner in (F, torch, torch.Tensor):
        for name, family in by_name.items():
            current = getattr(owner, name, None)
            if callable(current) and current not in families:
                families[current] = family
    return families


def module_family(module: nn.Module) -> str | None:
    """The activation family of a module, or None when it is not an activation module."""
    for cls in type(module).__mro__:
        family = MODULE_FAMILY.get(cls)
        if family is not None:
            return family
    return None


def functional_name(func: object) -> str:
    """A short readable name for a caught functional activation ("relu", "relu_", "gelu")."""
    return getattr(func, "__name__", str(func))


def bounds_of(family: str | None, module: nn.Module | None) -> tuple[float, float] | None:
    """The output bounds used for saturation, or None for unbounded families."""
    if family == "hardtanh" and module is not None:
        return (float(module.min_val), float(module.max_val))
    if family == "hardtanh":
        return (-1.0, 1.0)
    return BOUNDED.get(family)
