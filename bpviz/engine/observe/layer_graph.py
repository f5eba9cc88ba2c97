"""The model as a graph of its layers, from the data flow actually observed in one training forward.

Edges come from autograd: a layer's inputs are traced back through their
`grad_fn` chain to the nearest earlier layer outputs, so residual additions,
concatenations and reshapes between layers are seen through without
tracing the model's code. Layers the chain cannot reach (a frozen input
layer has no grad_fn) are joined to the previous layer in call order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

_SEARCH_LIMIT = 256  # autograd nodes visited per input before giving up


@dataclass(frozen=True)
class LayerNode:
    name: str
    type: str
    family: str | None
    module_path: tuple[str, ...]  # module hierarchy, for collapsible blocks ("layer1", "0", "conv1")
    order: int  # forward execution order


@dataclass(frozen=True)
class LayerGraph:
    nodes: list[LayerNode]
    edges: list[tuple[str, str]]  # (from layer, to layer)

    def successors(self, name: str) -> list[str]:
        return [b for a, b in self.edges if a == name]

    def predecessors(self, name: str) -> list[str]:
        return [a for a, b in self.edges if b == name]


class GraphRecorder:
    """Collects, during one forward, which autograd node made each layer's output and fed each layer's input."""

    def __init__(self) -> None:
        self._made_by: dict[object, str] = {}
        self._inputs: dict[str, list[object]] = {}
        self.order: list[str] = []

    def inputs(self, name: str, grad_fns: list[object]) -> None:
        """A layer's input nodes, from its first call only: each forward until the step ends calls again, and
        keeping their nodes would keep every one of those forwards' autograd graphs (and tensors) alive."""
        if name not in self._inputs:
            self._inputs[name] = [fn for fn in grad_fns if fn is not None]

    def output(self, name: str, *tensors: torch.Tensor) -> None:
        """A layer's outputs: all of them, since the next layer may read any (a classifier an LSTM's h_n)."""
        if name in self.order:
            return  # a later forward of the same step: see inputs()
        self.order.append(name)
        for tensor in tensors:
            if tensor.grad_fn is not None:
                self._made_by.setdefault(tensor.grad_fn, name)

    def build(self, layers: dict) -> LayerGraph:
        """The graph over the layers seen, in call order; `layers` maps name -> probes.LayerInfo."""
        nodes = []
        for order, name in enumerate(self.order):
            info = layers[name]
            path = tuple(p for p in info.module_name.split(".") if p)
            nodes.append(LayerNode(name, info.type, info.family, path, order))
        edges: list[tuple[str, str]] = []
        for index, name in enumerate(self.order):
            sources = self._sources(name)
            if not sources and index > 0:
                sources = [self.order[index - 1]]
            edges.extend((source, name) for source in sources if (source, name) not in edges)
        return LayerGraph(nodes, edges)

    def _sources(self, name: str) -> list[str]:
        found: list[str] = []
        frontier = list(self._inputs.get(name, []))
        seen: set[int] = set()
        while frontier and len(seen) < _SEARCH_LIMIT:
            fn = frontier.pop()
            if id(fn) in seen:
                continue
            seen.add(id(fn))
            maker = self._made_by.get(fn)
            if maker is not None and maker != name:
                if maker not in found:
                    found.append(maker)
                continue
            frontier.extend(next_fn for next_fn, _ in fn.next_functions if next_fn is not None)
        return sorted(found, key=self.order.index)
