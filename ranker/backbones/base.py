"""The backbone extension point: shared layers turning one input into per-task vectors."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence

from torch import Tensor, nn

from ranker.experts.base import Expert, ExpertInput

__all__ = ["Backbone"]


class Backbone(nn.Module, ABC):
    """Base of backbones (shared-bottom, MMoE, CGC, PLE).

    Subclasses set ``in_dim`` (width of the flat input), ``out_dims`` (task ->
    width of its representation) and say which of their parameters all tasks
    share (for gradient-level balancers such as GradNorm and PCGrad) and which
    form the last shared layer.

    Example:
        >>> from ranker.backbones import MMoE
        >>> from ranker.experts import MLPExpert
        >>> MMoE([MLPExpert(8, (4,)) for _ in range(2)], ["a", "b"]).out_dims
        {'a': 4, 'b': 4}
    """

    in_dim: int
    out_dims: dict[str, int]

    @abstractmethod
    def forward(self, inp: ExpertInput | Tensor) -> dict[str, Tensor]:
        """Map ``inp`` (flat ``[B, in_dim]``, fields if built) to task -> ``[B, out_dims[t]]``."""

    @abstractmethod
    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters through which more than one task's loss flows."""

    @abstractmethod
    def last_shared_parameters(self) -> Iterator[Tensor]:
        """Weights of the last layer every task reads (GradNorm's ``W``, Chen et al. 2018).

        The output layers of the shared experts nearest the task heads.
        """


def check_experts(experts: Sequence[Expert], where: str) -> tuple[int, int]:
    """The common ``(in_dim, out_dim)`` of ``experts``; ValueError naming ``where`` otherwise.

    Example:
        >>> from ranker.experts import MLPExpert
        >>> check_experts([MLPExpert(8, (4,)), MLPExpert(8, (2, 4))], "MMoE")
        (8, 4)
    """
    if not experts:
        raise ValueError(f"{where} needs at least one expert")
    dims = {(int(e.in_dim), int(e.out_dim)) for e in experts}
    if len(dims) != 1:
        raise ValueError(f"{where} experts must share (in_dim, out_dim), got {sorted(dims)}")
    ((in_dim, out_dim),) = dims
    return in_dim, out_dim
