"""Parameter-gradient norms of every layout a model produces, and the rows a lookup table's gradient touched.

Dense gradients go through `stats.squared_norms` (one fused kernel on a GPU); a sparse embedding's
gradient (`nn.Embedding(sparse=True)`) is a sparse tensor that the fused norm
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


def grad_norms(grads: list[torch.Tensor]) -> list[torch.Tensor]:
    """The L2 norm of each gradient, on its device; dense ones in one fused call."""
    dense = [i for i, g in enumerate(grads) if g.layout == torch.strided]
    norms: list[torch.Tensor | None] = [None] * len(grads)
    if dense:
        for i, norm in zip(dense, squared_norms([grads[i] for i in dense]).sqrt()):
            norms[i] = norm
    for i, g in enumerate(grads):
        if norms[i] is None:
            norms[i] = _sparse_norm(g)
    return norms


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
