"""The backbone extension point: shared layers turning one input vector into per-task ones."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

from torch import Tensor, nn

__all__ = ["Backbone"]


class Backbone(nn.Module, ABC):
    """Base of backbones (MMoE now; shared-bottom, CGC, PLE later).

    Subclasses set ``in_dim``, ``out_dims`` (task -> width of its representation)
    and say which of their parameters all tasks share (for gradient-level
    balancers such as GradNorm and PCGrad).

    Example:
        >>> from ranker.backbones import MMoE
        >>> from ranker.experts import MLPExpert
        >>> MMoE([MLPExpert(8, (4,)) for _ in range(2)], ["a", "b"]).out_dims
        {'a': 4, 'b': 4}
    """

    in_dim: int
    out_dims: dict[str, int]

    @abstractmethod
    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Map ``x`` ``[B, in_dim]`` to task -> ``[B, out_dims[task]]``."""

    @abstractmethod
    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters every task's loss flows through."""
