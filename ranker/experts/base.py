"""The expert extension point: a sub-network mapping one input vector to one output vector."""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import Tensor, nn

__all__ = ["Expert"]


class Expert(nn.Module, ABC):
    """Base of experts (MLP now; FM and DCN-v2 cross later).

    Subclasses set ``in_dim`` and ``out_dim`` and map ``[B, in_dim] -> [B, out_dim]``.

    Example:
        >>> from ranker.experts import MLPExpert
        >>> MLPExpert(8, (16, 4)).out_dim
        4
    """

    in_dim: int
    out_dim: int

    @abstractmethod
    def forward(self, x: Tensor) -> Tensor:
        """Map ``x`` ``[B, in_dim]`` to ``[B, out_dim]``."""
