"""Parameter-gradient norms of every layout a model produces, and the rows a lookup table's gradient touched.

Dense gradients are normed in bulk (`grad_norms`: one fused call, a dot product for a large one on a CPU);
a sparse embedding's gradient (`nn.Embedding(sparse=True)`) is a sparse tensor that the fused norm
rejects, so its norm comes from its values. An embedding's gradient reaches
only the rows the batch looked up: of a 50,000-word table perhaps 400 rows,
so a per-element size over the whole table reads hundreds of times too
small. The touched rows say what the gradient's size is per element that
received one.
"""

from __future__ import annotations

import torch
from torch import nn

from bpviz.engine.observe.stats import squared_norms

_DOT_FROM = 1 << 14  # elements from which a float32 gradient on a CPU is normed by a dot product of its own
_HALF = (torch.float16, torch.bfloat16)


def grad_norms(grads: list[torch.Tensor]) -> list[torch.Tensor]:
    """The L2 norm of each gradient, on its device; a half-precision one's in float32 (its own is Inf past 65504).

    A large float32 gradient on a CPU takes a BLAS dot product with itself, twice the speed of a norm there
    (`stats.squared_norms`); all the others, one fused `_foreach_norm` call: for a small tensor the call, not
    the pass, is the cost, and a deep network of small layers spent a dot product's call on each of them.
    """
    dense = [i for i, g in enumerate(grads) if g.layout == torch.strided]
    big = [i for i in dense if grads[i].numel() >= _DOT_FROM and _dot_normable(grads[i])]
    norms: list[torch.Tensor | None] = [None] * len(grads)
    if big:
        for i, norm in zip(big, squared_norms([grads[i] for i in big]).sqrt()):
            norms[i] = norm
    for half in (False, True):  # half precision normed in float32; float32 and double in their own
        small = [i for i in dense if norms[i] is None and (grads[i].dtype in _HALF) == half]
        if small:
            wide = {"dtype": torch.float32} if half else {}
            for i, norm in zip(small, torch._foreach_norm([grads[i] for i in small], 2, **wide)):
                norms[i] = norm
    for i, g in enumerate(grads):
        if norms[i] is None:
            norms[i] = _sparse_norm(g)
    return norms


def _dot_normable(grad: torch.Tensor) -> bool:
    """Whether `squared_norms` takes a dot product of this gradient (dense float32 on a CPU)."""
    return grad.device.type == "cpu" and grad.dtype == torch.float32 and grad.is_contiguous()


def lookup_parameters(model: nn.Module) -> frozenset[str]:
    """Qualified names of the weights of the model's lookup tables (nn.Embedding, nn.EmbeddingBag)."""
    tables = {id(m.weight) for m in model.modules() if isinstance(m, (nn.Embedding, nn.EmbeddingBag))}
    return frozenset(name for name, p in model.named_parameters() if id(p) in tables)


def touched_rows(grad: torch.Tensor) -> torch.Tensor:
    """How many rows of a lookup table's gradient are nonzero (a device scalar)."""
    if grad.layout == torch.sparse_coo:
        return torch.tensor(grad.coalesce().indices().unique().numel(), device=grad.device)
    return torch.count_nonzero(grad.reshape(grad.shape[0], -1).abs().amax(dim=1))


def _sparse_norm(grad: torch.Tensor) -> torch.Tensor:
    if grad.layout == torch.sparse_coo:
        return torch.linalg.vector_norm(grad.coalesce().values())
    return torch.linalg.vector_norm(grad.to_dense())
