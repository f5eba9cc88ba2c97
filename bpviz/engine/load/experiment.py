"""Turning a user's file into a model, data, a loss and an optimizer the Stepper can train.

Two kinds of file are accepted:

* an *experiment file* (``.py``) defining ``build()``, which returns a dict naming
  the model, the training batches and optionally the loss, optimizer and validation;
* a *pickled whole module* (``.pt`` / ``.pth``), trained on synthetic batches. Unpickling
  runs arbitrary code, so it is refused unless the caller passes ``trust=True``
  (see checkpoint.py, which also applies ``--weights`` state dicts).

Every failure is a :class:`UserCodeError` saying what failed, where in the user's
file, and why, so the CLI and the window can show it without a traceback wall.
Loading seeds every random generator first: loading the same file twice gives
the same initial weights and data, which is what the window's Reset relies on.
"""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import random
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

from bpviz.engine.load.checkpoint import PICKLE_SUFFIXES, apply_weights, load_pickled_model
from bpviz.engine.user_error import (
    USER_CODE_ENDINGS,
    UserCodeError,
    describe_exception,
    full_traceback,
    locate,
    user_code_failed,
)

KNOWN_KEYS = ("model", "train_data", "loss_fn", "optimizer", "val_data", "evaluate")
DEFAULT_LR = 0.01

_module_ids = itertools.count()


@dataclass
class Experiment:
    """Everything one training run needs, as the user's file defined it (defaults filled in)."""

    source: Path
    model: nn.Module
    train_data: Iterable
    loss_fn: Callable
    optimizer: torch.optim.Optimizer
    val_data: Iterable | None = None
    evaluate: Callable | None = None
    seed: int = 0


def load_experiment(
    path: str | Path,
    *,
    trust: bool = False,
    weights: str | Path | None = None,
    input_shape: tuple[int, ...] | None = None,
    seed: int = 0,
) -> Experiment:
    """Load an experiment file or (with `trust`) a pickled module; raise UserCodeError on any problem."""
    path = Path(path)
    if not path.is_file():
        raise UserCodeError(
            f"cannot open {path}",
            why="no such file" if not path.exists() else "it is not a file",
            where=str(path),
        )
    seed_everything(seed)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        model, train_data = load_pickled_model(path, trust=trust, input_shape=input_shape, seed=seed)
        _check_materialised(model, str(path))
        experiment = Experiment(
            source=path,
            model=model,
            train_data=train_data,
            loss_fn=nn.CrossEntropyLoss(),
            optimizer=_default_optimizer(model, str(path)),
            seed=seed,
        )
    elif path.suffix.lower() == ".py":
        returned, where = _run_build(path)
        experiment = _experiment_from_build(path, returned, where, seed)
    else:
        raise UserCodeError(
            f"cannot load {path.name}",
            why=f"unknown file type {path.suffix!r}: give an experiment file (.py) or a pickled model (.pt/.pth); "
            "a recorded run (.bpviz) opens in the window (bpviz RUN.bpviz) or with bpviz check RUN.bpviz",
            where=str(path),
        )
    if weights is not None:
        apply_weights(experiment.model, Path(weights))
    return experiment


def seed_everything(seed: int) -> None:
    """Seed torch, random and numpy so that building twice gives identical weights and data."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


# --- experiment files -------------------------------------------------------------------------


def _run_build(path: Path) -> tuple[Any, str]:
    """Import the file and call its build(); return what it returned and where build() is defined."""
    module = _import_user_file(path)
    build = getattr(module, "build", None)
    if build is None:
        raise UserCodeError(
            "the experiment file defines no build()",
            why="define `def build():` returning a dict with at least 'model' and 'train_data'",
            where=str(path),
        )
    if not callable(build):
        raise UserCodeError(
            "build in the experiment file is not a function",
            why=f"build is a {type(build).__name__}; define `def build():` returning a dict",
            where=str(path),
        )
    where = _definition_site(build, path)
    required = [
        p.name
        for p in inspect.signature(build).parameters.values()
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    if required:
        raise UserCodeError(
            "build() must take no arguments",
            why=f"it requires {', '.join(required)}; give those parameters defaults or build them inside",
            where=where,
        )
    with _visible(module, path):
        try:
            returned = build()
        except USER_CODE_ENDINGS as exc:
            raise user_code_failed(exc, "build() raised an exception", "build()", path) from exc
    return returned, where


def _import_user_file(path: Path) -> ModuleType:
    """Execute the file as a fresh module with a unique name, removed from sys.modules afterwards."""
    name = f"bpviz_experiment_{next(_module_ids)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UserCodeError(f"cannot import {path.name}", why="Python cannot load it as a module", where=str(path))
    module = importlib.util.module_from_spec(spec)
    with _visible(module, path):
        try:
            spec.loader.exec_module(module)
        except SyntaxError as exc:
            raise UserCodeError(
                "the experiment file has a syntax error",
                why=describe_exception(exc).splitlines()[-1],
                where=locate(exc),
                details=full_traceback(exc),
            ) from exc
        except USER_CODE_ENDINGS as exc:
            raise user_code_failed(exc, "importing the experiment file failed", "the experiment file", path) from exc
    return module


@contextmanager
def _visible(module: ModuleType, path: Path) -> Iterator[None]:
    """While active, the module is importable by name, its folder is on sys.path, and sys.argv is `[FILE]`.

    Dataclasses and pickling look a class's module up in sys.modules, and users import
    helper files that sit next to their experiment; both must work while the file runs,
    yet loading many experiments must not leave one module per load behind. A training
    script turned experiment often parses its command line: it sees what `python FILE`
    would give it, never bpviz's own arguments.
    """
    folder = str(path.resolve().parent)
    argv = sys.argv
    sys.modules[module.__name__] = module
    sys.path.insert(0, folder)
    sys.argv = [str(path)]
    try:
        yield
    finally:
        sys.argv = argv
        sys.modules.pop(module.__name__, None)
        if folder in sys.path:
            sys.path.remove(folder)


def _definition_site(function: Callable, path: Path) -> str:
    """`file:line` of a function's `def`, falling back to the file alone."""
    code = getattr(function, "__code__", None)
    return f"{path}:{code.co_firstlineno}" if code is not None else str(path)


def _experiment_from_build(path: Path, returned: object, where: str, seed: int) -> Experiment:
    """Check what build() returned, key by key, and fill in the defaults."""
    if not isinstance(returned, Mapping):
        raise UserCodeError(
            f"build() returned {_kind(returned)}, not a dict",
            why="return a dict such as {'model': model, 'train_data': batches}",
            where=where,
        )
    unknown = [str(key) for key in returned if key not in KNOWN_KEYS]
    if unknown:
        raise UserCodeError(
            f"build() returned unknown key(s): {', '.join(repr(k) for k in unknown)}",
            why=f"the known keys are {', '.join(KNOWN_KEYS)}",
            where=where,
        )
    model = returned.get("model")
    if model is None:
        raise UserCodeError("build() returned no 'model'", why="add 'model': your nn.Module to the dict", where=where)
    if not isinstance(model, nn.Module):
        raise UserCodeError(
            "'model' is not a torch.nn.Module",
            why=f"build() gave {_kind(model)}; return the module instance itself",
            where=where,
        )
    _check_materialised(model, where)
    if returned.get("train_data") is None:
        raise UserCodeError(
            "build() returned no 'train_data'",
            why="add 'train_data': a list (or DataLoader) of (inputs, targets) batches",
            where=where,
        )
    train_data = _check_batches("train_data", returned["train_data"], where, path)
    evaluate = _optional_callable("evaluate", returned.get("evaluate"), where)
    val_data = returned.get("val_data")
    if val_data is not None and evaluate is None:
        val_data = _check_batches("val_data", val_data, where, path)
    loss_fn = returned.get("loss_fn")
    if loss_fn is None:
        loss_fn = nn.CrossEntropyLoss()
    elif not callable(loss_fn):
        raise UserCodeError(
            "'loss_fn' is not callable",
            why=f"build() gave {_kind(loss_fn)}; give a loss module such as nn.MSELoss() or a function",
            where=where,
        )
    optimizer = returned.get("optimizer")
    if optimizer is None:
        optimizer = _default_optimizer(model, where)
    else:
        _check_optimizer(optimizer, model, where)
    return Experiment(
        source=path,
        model=model,
        train_data=train_data,
        loss_fn=loss_fn,
        optimizer=optimizer,
        val_data=val_data,
        evaluate=evaluate,
        seed=seed,
    )


def _check_materialised(model: nn.Module, where: str) -> None:
    """A model on the meta device has shapes but no numbers: nothing can train or be measured on it."""
    meta = [name for name, tensor in itertools.chain(model.named_parameters(), model.named_buffers()) if tensor.is_meta]
    if meta:
        raise UserCodeError(
            "the model is on the meta device",
            why=f"{len(meta)} of its tensors ({meta[0]}, ...) hold no data; build it on a real device, or call "
            "model.to_empty(device='cpu') and initialise its weights before returning it",
            where=where,
        )


def _kind(value: object) -> str:
    """A short description of a value for messages: 'a list', 'None', 'the class Adam'."""
    if value is None:
        return "None"
    if isinstance(value, type):
        return f"the class {value.__name__}"
    return f"a {type(value).__name__}"


def _optional_callable(key: str, value: object, where: str) -> Callable | None:
    if value is None or callable(value):
        return value
    raise UserCodeError(f"'{key}' is not callable", why=f"build() gave {_kind(value)}", where=where)


def _check_batches(key: str, data: object, where: str, source: Path) -> Iterable:
    """Data must be iterable more than once and yield (inputs, targets) tensor pairs; look at the first batch."""
    if isinstance(data, Iterator):
        raise UserCodeError(
            f"'{key}' can be iterated only once",
            why=f"build() gave {_kind(data)} (an iterator); every epoch re-reads the data, "
            "so return a list of batches or a DataLoader",
            where=where,
        )
    if not isinstance(data, Iterable) or isinstance(data, (torch.Tensor, str, bytes, Mapping)):
        raise UserCodeError(
            f"'{key}' is not a collection of batches",
            why=f"build() gave {_kind(data)}; give a list (or DataLoader) of (inputs, targets) tuples",
            where=where,
        )
    first = _first_batch(key, data, source)
    if first is None:
        why = "it yielded no batch; give at least one (inputs, targets)"
        raise UserCodeError(f"'{key}' is empty", why=why, where=where)
    if not isinstance(first, (tuple, list)) or len(first) != 2:
        raise UserCodeError(
            f"'{key}' does not yield (inputs, targets) pairs",
            why=f"its first batch is {_describe_batch(first)}",
            where=where,
        )
    for part, value in zip(("inputs", "targets"), first):
        if not _holds_tensors(value):
            raise UserCodeError(
                f"'{key}' batches must hold tensors",
                why=f"the first batch's {part} is {_kind(value)}, not a torch.Tensor "
                "(or a tuple or dict of tensors); convert with torch.as_tensor",
                where=where,
            )
    return data


def _first_batch(key: str, data: Iterable, source: Path) -> object:
    """The first batch, read as user code: a Dataset's __getitem__ or an iterable's __iter__ may fail like any."""
    try:
        return next(iter(data), None)
    except USER_CODE_ENDINGS as exc:
        error = user_code_failed(exc, f"reading the first batch of '{key}' failed", f"reading '{key}'", source)
        if "pickle" in error.why.lower():
            error.why += (
                " (DataLoader workers started with 'spawn' or 'forkserver' re-import the Dataset's class by its "
                "module: define it in a module the experiment file imports, or use num_workers=0)"
            )
        raise error from exc


def _holds_tensors(value: object) -> bool:
    """A tensor, or a tuple/list/dict of tensors: what the Stepper can pass to model(*x) / model(**x)."""
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, Mapping):
        items = list(value.values())
    elif isinstance(value, (tuple, list)):
        items = list(value)
    else:
        return False
    return bool(items) and all(isinstance(item, torch.Tensor) for item in items)


def _describe_batch(batch: object) -> str:
    if isinstance(batch, (tuple, list)):
        return f"a {type(batch).__name__} of {len(batch)} item(s), not 2"
    if isinstance(batch, torch.Tensor):
        return f"a single tensor of shape {tuple(batch.shape)}; pair it with its targets"
    return _kind(batch)


def _default_optimizer(model: nn.Module, where: str) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise UserCodeError(
            "the model has no trainable parameters",
            why="every parameter has requires_grad=False (or there are none), so there is nothing to train",
            where=where,
        )
    return torch.optim.SGD(params, lr=DEFAULT_LR)


def _check_optimizer(optimizer: object, model: nn.Module, where: str) -> None:
    """The optimizer must be an instance and update this model's parameters, not a copy's."""
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise UserCodeError(
            "'optimizer' is not a torch.optim.Optimizer",
            why=f"build() gave {_kind(optimizer)}; give an instance such as "
            "torch.optim.SGD(model.parameters(), lr=0.01)",
            where=where,
        )
    own = {id(p) for p in model.parameters()}
    held = [p for group in optimizer.param_groups for p in group["params"]]
    foreign = sum(1 for p in held if id(p) not in own)
    if foreign:
        raise UserCodeError(
            "the optimizer is not over the model's parameters",
            why=f"{foreign} of the {len(held)} tensors it updates do not belong to 'model'; "
            "create the optimizer from the same model instance you return",
            where=where,
        )
