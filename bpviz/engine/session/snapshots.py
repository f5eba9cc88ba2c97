"""Copies of a training run's whole state at step boundaries, kept so the run can go back to an earlier step.

A snapshot holds what the next steps depend on: the model's parameters and
buffers (and which module sits where, so a swapped activation is swapped
back), the optimizer's state and hyperparameters, the RNG states (torch CPU,
every CUDA device once CUDA is in use, numpy, Python's `random`), the data
position (see DataPosition), and the judging state of the Watcher (dead-unit
tracker, findings, detail schedule) so that a replayed step is judged as it
was the first time. An experiment has no LR scheduler or GradScaler today
(the Stepper steps neither); one that gains them must step them and keep
their state_dict() here beside the optimizer's.

Snapshots live in memory, in the process that trains (the window's child
process), and not in the run file: an optimizer's state is an arbitrary
nested structure that only a pickle stores in general, and a run file is
opened by people who did not write it, where pickles are never read without
consent. Tensors are copied to the host, so device memory is not taken; a
snapshot of a model on a GPU waits for its copies twice (the model's, the
optimizer's), on the steps it is taken, never on the others.

Memory stays bounded: a snapshot is taken every `every` steps and at most
`limit` of them are kept; when one more comes, the kept snapshot closest to
its predecessor goes (never one of the `recent` newest), so recent steps are
dense and old ones thin out. Snapshots that no later one can stand in for are
pinned and never thinned: the start of the run, each branch's first
boundary, and the state right after each remedy (a remedy cannot be replayed,
only restored).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

DEFAULT_EVERY = 10
DEFAULT_MEMORY = 512 * 2**20  # bytes for all unpinned snapshots together
MAX_LIMIT = 32  # a small model need not keep more than this many
MIN_LIMIT = 2  # nor a large one fewer: a rewind must be able to land near the present


@dataclass(frozen=True)
class RngState:
    """Every random number generator training may draw from: the global ones and the data loader's own."""

    torch_cpu: torch.Tensor
    cuda: tuple[torch.Tensor, ...] | None
    numpy: tuple
    python: tuple
    loaders: tuple[torch.Tensor, ...]  # the states of the generators found on the data (see loader_generators)

    @classmethod
    def capture(cls, data: object) -> RngState:
        cuda = tuple(torch.cuda.get_rng_state_all()) if torch.cuda.is_initialized() else None
        loaders = tuple(g.get_state() for g in loader_generators(data))
        return cls(torch.get_rng_state(), cuda, np.random.get_state(), random.getstate(), loaders)

    def restore(self, data: object) -> None:
        torch.set_rng_state(self.torch_cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(list(self.cuda))
        np.random.set_state(self.numpy)
        random.setstate(self.python)
        for generator, state in zip(loader_generators(data), self.loaders):
            generator.set_state(state)


def loader_generators(data: object) -> list[torch.Generator]:
    """The torch.Generators a DataLoader shuffles or samples with, when it was given its own (not the global one)."""
    found = []
    for holder in (data, getattr(data, "sampler", None), getattr(data, "batch_sampler", None)):
        generator = getattr(holder, "generator", None)
        if isinstance(generator, torch.Generator) and all(generator is not g for g in found):
            found.append(generator)
    return found


@dataclass(frozen=True)
class DataPosition:
    """Where the data stood: the epoch's starting RNG state and how many of its batches were read.

    The data is any re-iterable (a list, a DataLoader, shuffled or not), so a
    position cannot be a pointer into it. A shuffled loader draws its order
    from the RNG when an epoch's iterator is made and first read; with the RNG
    as it was then, a fresh iterator yields the same batches in the same
    order, and the batches already read are read again and dropped.
    """

    epoch: int
    read: int  # batches read in this epoch
    epoch_rng: RngState | None  # None before the first batch: nothing has been read

    def iterator(self, data: Iterable) -> Any:
        """A fresh iterator over `data` at this position (None before the first batch); the RNG is left moved on,
        for the caller to restore as it was at the position."""
        if self.epoch_rng is None:
            return None
        self.epoch_rng.restore(data)
        batches = iter(data)
        for _ in range(self.read):
            next(batches)
        return batches


@dataclass
class Snapshot:
    """One step boundary's state: `boundary` steps completed on `branch`."""

    branch: int
    boundary: int
    pinned: bool
    after_remedy: bool  # taken right after a remedy at this boundary: not the state that boundary began with
    tensors: list[torch.Tensor]  # parameters then buffers, in model order, on the host
    modules: list[tuple[nn.Module, dict[str, nn.Module | None]]]  # each module's children, by name
    optimizer: dict  # its state_dict(), tensors on the host
    rng: RngState
    data: DataPosition
    extra: dict[str, Any] = field(default_factory=dict)  # the stepper's own: clipping, remedies, judging state

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors) + _state_bytes(self.optimizer)


def capture_model(model: nn.Module) -> tuple[list[torch.Tensor], list[tuple[nn.Module, dict]]]:
    """Host copies of every parameter and buffer, and the module tree as it is."""
    live = _tensors(model)
    with torch.no_grad():
        tensors = [_host_copy(t.detach()) for t in live]
    _wait_for_copies(live)
    return tensors, [(module, dict(module._modules)) for module in model.modules()]


def restore_model(model: nn.Module, tensors: list[torch.Tensor], modules: list[tuple[nn.Module, dict]]) -> None:
    """Put the module tree back first (a remedy may have swapped a child), then every value in place."""
    for module, children in modules:
        module._modules.clear()
        module._modules.update(children)
    with torch.no_grad():
        for live, saved in zip(_tensors(model), tensors, strict=True):
            live.copy_(saved)


def host_state(stateful: Any) -> dict:
    """`stateful.state_dict()` copied, with its tensors on the host (load_state_dict moves them back)."""
    state = stateful.state_dict()
    copied = _map_tensors(state, _host_copy)
    live: list[torch.Tensor] = []
    _map_tensors(state, live.append)
    _wait_for_copies(live)
    return copied


class SnapshotStore:
    """The snapshots of one training run over all its branches, thinned to stay within `limit` (+ pinned)."""

    def __init__(self, every: int = DEFAULT_EVERY, limit: int = MAX_LIMIT, recent: int = 4) -> None:
        if every < 1 or limit < 1:
            raise ValueError(f"snapshots need every >= 1 and limit >= 1, got every={every}, limit={limit}")
        self.every = every
        self.limit = limit
        self.recent = min(recent, limit)
        self.snapshots: list[Snapshot] = []  # in the order they were taken

    def due(self, boundary: int) -> bool:
        return boundary % self.every == 0

    def add(self, snapshot: Snapshot) -> None:
        """Keep `snapshot` (replacing one taken at the same place before it), then thin to the limit."""
        place = (snapshot.branch, snapshot.boundary, snapshot.after_remedy)
        same = [s for s in self.snapshots if (s.branch, s.boundary, s.after_remedy) == place]
        for old in same:
            self.snapshots.remove(old)
            snapshot.pinned = snapshot.pinned or old.pinned
        self.snapshots.append(snapshot)
        self._thin()

    def nearest(self, lineage: list[tuple[int, int, int | None]], boundary: int) -> Snapshot:
        """The latest snapshot on `lineage` that can stand for `boundary`: at it (not after its remedies) or before.

        `lineage` lists (branch, first boundary, end boundary or None) from the run's start to the current branch.
        """

        def on_line(s: Snapshot, branch: int, start: int, end: int | None) -> bool:
            # where a child branch begins, its parent's state after a remedy there is not the child's
            below_end = end is None or s.boundary < end or (s.boundary == end and not s.after_remedy)
            return s.branch == branch and start <= s.boundary and below_end

        def usable(s: Snapshot) -> bool:
            on = any(on_line(s, *part) for part in lineage)
            return on and (s.boundary < boundary or (s.boundary == boundary and not s.after_remedy))

        candidates = [s for s in self.snapshots if usable(s)]
        if not candidates:
            raise LookupError(f"no snapshot at or before boundary {boundary}")
        return max(candidates, key=lambda s: (s.boundary, self.snapshots.index(s)))

    @property
    def nbytes(self) -> int:
        return sum(s.nbytes for s in self.snapshots)

    def _thin(self) -> None:
        """Drop free snapshots until `limit` are left: the one nearest the one before it on its branch first.

        The oldest free one and the `recent` newest stay; a snapshot with none before it on its branch
        (the first after a rewind) goes only when nothing else can.
        """
        while True:
            free = [s for s in self.snapshots if not s.pinned]  # in the order they were taken
            if len(free) <= self.limit:
                return
            last_on: dict[int, int] = {}
            candidates = []
            for index, snap in enumerate(free):
                before = last_on.get(snap.branch)
                gap = snap.boundary - before if before is not None else math.inf
                if 0 < index < len(free) - self.recent:
                    candidates.append((gap, index))
                last_on[snap.branch] = snap.boundary
            self.snapshots.remove(free[min(candidates or [(0, 0)])[1]])


def default_limit(snapshot_bytes: int, memory: int = DEFAULT_MEMORY) -> int:
    """How many snapshots of this size fit the memory budget, within [MIN_LIMIT, MAX_LIMIT]."""
    return max(MIN_LIMIT, min(MAX_LIMIT, memory // max(snapshot_bytes, 1)))


def _tensors(model: nn.Module) -> list[torch.Tensor]:
    return [*model.parameters(), *model.buffers()]


def _host_copy(tensor: torch.Tensor) -> torch.Tensor:
    """A host copy; from a device into pinned memory without waiting (see _wait_for_copies)."""
    if tensor.device.type == "cpu":
        return tensor.clone()
    host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=torch.cuda.is_available())
    return host.copy_(tensor, non_blocking=True)


def _wait_for_copies(tensors: Iterable[torch.Tensor]) -> None:
    """One wait for every device copy started, instead of one per tensor."""
    if torch.cuda.is_available() and any(t.device.type == "cuda" for t in tensors):
        torch.cuda.synchronize()


def _map_tensors(value: Any, fn: Callable[[torch.Tensor], Any]) -> Any:
    """`value` with `fn` applied to every tensor inside its dicts, lists and tuples (a state_dict's shape)."""
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, dict):
        return {k: _map_tensors(v, fn) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_map_tensors(v, fn) for v in value)
    return value


def _state_bytes(state: Any) -> int:
    sizes: list[int] = []
    _map_tensors(state, lambda t: sizes.append(t.numel() * t.element_size()))
    return sum(sizes)
