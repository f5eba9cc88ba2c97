"""Which axis of an activation holds its units, read from the layer that produced the data, not from its rank.

A conv's units are its output channels (dim 1 of NCHW); a Linear's are its
output features (the last dim), also when the Linear runs on NHWC feature
maps (ConvNeXt and Swin MLP blocks) or on conv features transposed to
(N, L, C). So the producing layer's unit count (out_features, out_channels,
normalized_shape, ...) and its natural axis are remembered, and an
activation takes the axis of that size, preferring the producer's own; only
when neither axis has that size does the rank decide (4-d and more: dim 1).
A feature map whose channels a concatenation changed stays channel-first.
"""

from __future__ import annotations

import torch
from torch import nn


def _units_of(module: nn.Module) -> tuple[int, bool] | None:
    """(unit count, whether they sit on dim 1) of a producing layer, None for layers that keep their input's units."""
    if isinstance(module, nn.modules.conv._ConvNd):
        return module.out_channels, True
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return module.num_features, True
    if isinstance(module, nn.modules.instancenorm._InstanceNorm):
        return module.num_features, True
    if isinstance(module, nn.GroupNorm):
        return module.num_channels, True
    if isinstance(module, nn.Linear):
        return module.out_features, False
    if isinstance(module, nn.LayerNorm):
        return module.normalized_shape[-1], False
    if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
        return module.embedding_dim, False
    if isinstance(module, nn.RNNBase):
        return module.hidden_size * (2 if module.bidirectional else 1), False
    if isinstance(module, nn.MultiheadAttention):
        return module.embed_dim, False
    return None


class UnitAxis:
    """Remembers the latest producing layer of a forward and answers where an activation's units are."""

    def __init__(self) -> None:
        self._units: tuple[int, bool] | None = None

    def reset(self) -> None:
        """A new forward: no producer seen yet."""
        self._units = None

    def produced(self, module: nn.Module) -> None:
        """A layer's output was observed; a producing layer sets the unit count for what follows."""
        units = _units_of(module)
        if units is not None:
            self._units = units

    def channel_first(self, x: torch.Tensor) -> bool:
        """Whether `x`'s units are on dim 1 (else on the last dim)."""
        if x.dim() < 3:
            return False
        if self._units is not None:
            size, on_dim1 = self._units
            natural, other = (1, -1) if on_dim1 else (-1, 1)
            if x.shape[natural] == size:
                return natural == 1
            # A feature map (4-d and more) after a channel-first producer keeps its channels on dim 1 when their
            # count changed (concatenated, DenseNet-style, or split): its width may equal the producer's channels
            # by chance. Only a sequence ((N, C, L) turned (N, L, C)) or a Linear's output moved to dim 1 is read
            # on the other axis.
            if x.shape[other] == size and not (on_dim1 and x.dim() >= 4):
                return other == 1
        return x.dim() >= 4
