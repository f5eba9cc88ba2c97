"""A get-or-make cache for values the same keys ask for again and again (per-layer constants, decoded keyframes).

Emptied when full rather than evicted one by one: keys that change every step (a
model whose shapes vary, a long scrub through a run) would otherwise grow it
without bound, and remaking a value costs less than keeping track of which is oldest.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class MadeOnce(Generic[V]):
    """Each key's value, made by `make` on its first request and kept until `limit` keys are held."""

    def __init__(self, limit: int) -> None:
        self._made: dict[Hashable, V] = {}
        self._limit = limit

    def get(self, key: Hashable, make: Callable[[], V]) -> V:
        made = self._made.get(key)
        if made is None:
            if len(self._made) >= self._limit:
                self._made.clear()
            made = self._made[key] = make()
        return made
