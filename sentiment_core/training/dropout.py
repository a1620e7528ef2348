"""Dropout with a cheaper mask on the CPU.

PyTorch's CPU dropout draws its mask with ``bernoulli_``, which costs about four times as much as
drawing uniform numbers and comparing them with the keep probability (7.5 ms against 1.8 ms for a
[32, 240, 100] batch of embeddings on 2 cores; 11.5% of an LSTM bf16 training step). Both give
each element an independent Bernoulli(keep) mask; the kept elements are scaled by 1 / keep, as
``nn.Dropout`` does. On other devices PyTorch's own fused kernel is used (it is not slower there).
"""

from __future__ import annotations

import torch
from torch import nn


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``nn.functional.dropout(x, p, training)``, with the mask drawn as ``uniform < 1 - p`` on the CPU."""
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    if x.device.type != "cpu":
        return nn.functional.dropout(x, p, True)
    keep = 1.0 - p
    # The scaled mask in place in the uniform tensor: one draw, one compare, one scale; autograd
    # multiplies the upstream gradient by the same mask.
    mask = torch.rand(x.shape, device=x.device).lt_(keep).mul_(1.0 / keep)
    return x * mask.to(x.dtype)


class Dropout(nn.Module):
    """``nn.Dropout`` (same ``p``, same state dict: none) with :func:`dropout`'s cheaper CPU mask."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
