"""Weights and whole models saved by torch: state-dict checkpoints, and pickled modules when trusted.

A state dict is read with `weights_only=True`, which cannot run code. A pickled
module can, so it is unpickled only when the user said `--trust`; it carries
no data, so it is paired with synthetic batches shaped by `--input-shape`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from bpviz.engine.user_error import UserCodeError, describe_exception, full_traceback, locate

PICKLE_SUFFIXES = (".pt", ".pth")
SYNTHETIC_BATCHES = 8
SYNTHETIC_BATCH_SIZE = 16


def apply_weights(model: nn.Module, weights: Path) -> None:
    """Load a state-dict checkpoint (never unpickling code) into the model, naming any key mismatch."""
    if not weights.is_file():
        raise UserCodeError(f"cannot open weights file {weights}", why="no such file", where=str(weights))
    try:
        loaded = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserCodeError(
            f"cannot read weights from {weights.name}",
            why=_unreadable_weights(weights, exc),
            where=str(weights),
            details=full_traceback(exc),
        ) from exc
    state = _state_dict_in(loaded)
    if state is None:
        raise UserCodeError(
            f"{weights.name} holds no state dict",
            why=f"it holds a {type(loaded).__name__}; save one with torch.save(model.state_dict(), path)",
            where=str(weights),
        )
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    reshaped = [
        f"{key} is {tuple(state[key].shape)} in the file, {tuple(own[key].shape)} in the model"
        for key in own
        if key in state and state[key].shape != own[key].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_few(unexpected)}")
    if reshaped:
        problems.append(f"shape mismatch: {_few(reshaped)}")
    if problems:
        what = f"the weights in {weights.name} do not fit the model"
        raise UserCodeError(what, why="; ".join(problems), where=str(weights))
    model.load_state_dict(state)


_STATE_DICT_HINT = "weights are a state dict saved with torch.save(model.state_dict(), path)"


def _unreadable_weights(path: Path, exc: Exception) -> str:
    """Why `path` is no weights, in the user's terms. torch's own message for a file holding more than tensors
    advises loading it with weights_only=False, which runs whatever code the file holds: never repeated here."""
    with path.open("rb") as file:
        head = file.read(16)
    if head.startswith(b"SQLite format 3"):
        return (
            f"it is a SQLite file (a recorded bpviz run?), not weights: open a run with File > Open; {_STATE_DICT_HINT}"
        )
    if "weights only load failed" in str(exc).lower():
        return (
            "it holds objects besides tensors (a whole pickled model, an optimizer?), which bpviz does not unpickle "
            f"as weights since unpickling can run code; {_STATE_DICT_HINT}"
        )
    return f"{describe_exception(exc).splitlines()[0]}; {_STATE_DICT_HINT}"


def holds_state_dict(path: Path) -> bool:
    """Whether `path` is a state-dict checkpoint: data that `weights_only=True` reads without running any code.

    Asked before the trust prompt, so weights are never mistaken for a pickled model that runs code.
    """
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a pickled module (or anything else) is refused by weights_only: not a state dict
        return False
    return _state_dict_in(loaded) is not None


def _state_dict_in(loaded: object) -> Mapping[str, torch.Tensor] | None:
    """The state dict itself, or the one a training checkpoint keeps under 'state_dict'/'model_state_dict'."""
    if not isinstance(loaded, Mapping):
        return None
    if loaded and all(isinstance(v, torch.Tensor) for v in loaded.values()):
        return loaded
    for key in ("state_dict", "model_state_dict"):
        if isinstance(loaded.get(key), Mapping):
            return _state_dict_in(loaded[key])
    return None


def _few(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" (and {len(keys) - limit} more)" if len(keys) > limit else "")


def load_pickled_model(
    path: Path, *, trust: bool, input_shape: tuple[int, ...] | None, seed: int
) -> tuple[nn.Module, list[tuple[torch.Tensor, torch.Tensor]]]:
    """Unpickle a whole nn.Module (only when trusted) and make synthetic classification batches for it."""
    if not trust:
        raise UserCodeError(
            f"refusing to unpickle {path.name} without --trust",
            why="unpickling a .pt/.pth model runs arbitrary code stored in the file; pass --trust only "
            "for a file from a source you trust, or load a state dict into an experiment file with --weights",
            where=str(path),
        )
    if input_shape is None:
        raise UserCodeError(
            f"{path.name} needs --input-shape",
            why="a pickled model carries no data; give the shape of one sample, e.g. --input-shape 3,32,32 or 784",
            where=str(path),
        )
    try:
        model = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise UserCodeError(
            f"cannot unpickle {path.name}",
            why=describe_exception(exc).splitlines()[0],
            where=str(path),
            details=full_traceback(exc),
        ) from exc
    if isinstance(model, Mapping):
        raise UserCodeError(
            f"{path.name} holds a state dict, not a model",
            why="a state dict has weights but no architecture: write an experiment file whose build() "
            f"creates the model, and pass --weights {path}",
            where=str(path),
        )
    if not isinstance(model, nn.Module):
        raise UserCodeError(
            f"{path.name} does not hold a torch.nn.Module", why=f"it holds a {type(model).__name__}", where=str(path)
        )
    return model, synthetic_batches(model, input_shape, seed)


def synthetic_batches(
    model: nn.Module, input_shape: tuple[int, ...], seed: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Random inputs of the given per-sample shape, with random class targets over the model's output width.

    Leaves the model in training mode: a pickled model may have been saved after eval(),
    and it is about to be trained.
    """
    generator = torch.Generator().manual_seed(seed)
    inputs = [torch.randn((SYNTHETIC_BATCH_SIZE, *input_shape), generator=generator) for _ in range(SYNTHETIC_BATCHES)]
    model.eval()  # a probing forward must not move BatchNorm running statistics
    try:
        with torch.no_grad():
            output = model(inputs[0])
    except Exception as exc:
        raise UserCodeError(
            f"the model's forward failed on inputs of shape {tuple(inputs[0].shape)}",
            why=f"{describe_exception(exc).splitlines()[0]} (is --input-shape right?)",
            where=locate(exc),
            details=full_traceback(exc),
        ) from exc
    finally:
        model.train()
    if not isinstance(output, torch.Tensor) or output.ndim < 2:
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else f"a {type(output).__name__}"
        raise UserCodeError(
            "cannot make classification targets for this model",
            why=f"its output is {shape}; synthetic training needs a (batch, classes, ...) tensor",
        )
    classes, rest = output.shape[1], tuple(output.shape[2:])
    return [(x, torch.randint(classes, (SYNTHETIC_BATCH_SIZE, *rest), generator=generator)) for x in inputs]
