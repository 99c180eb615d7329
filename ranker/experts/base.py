"""The expert extension point: a sub-network mapping one batch of inputs to one vector per row.

Experts see the input two ways, in one :class:`ExpertInput`: the flat vector
(all embeddings and standardized numerics side by side, what an MLP or a
DCN-v2 cross network eats) and, where the model builds them, the stacked field
embeddings (one ``d``-wide vector per feature, what an FM's pairwise
interactions need).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from torch import Tensor, nn

__all__ = ["Expert", "ExpertInput"]


@dataclass(frozen=True)
class ExpertInput:
    """What every expert of a backbone level is given.

    Args:
        flat: ``[B, in_dim]`` flat input (first level: ``sum(cat dims) + n_num``).
        fields: ``[B, F, d]`` one vector per feature (``F = n_cat + n_num``), or None
            where the model builds no fields (no expert needs them, or an upper
            PLE level whose input is the level below's output).

    Example:
        >>> import torch
        >>> ExpertInput(torch.zeros(2, 5)).fields is None
        True
    """

    flat: Tensor
    fields: Tensor | None = None

    @staticmethod
    def of(x: ExpertInput | Tensor) -> ExpertInput:
        """``x`` itself, or a bare ``[B, in_dim]`` tensor wrapped without fields.

        Example:
            >>> import torch
            >>> ExpertInput.of(torch.zeros(2, 5)).flat.shape
            torch.Size([2, 5])
        """
        return x if isinstance(x, ExpertInput) else ExpertInput(x)


class Expert(nn.Module, ABC):
    """Base of experts (MLP, FM, DCN-v2 cross).

    Subclasses set ``in_dim`` (width of ``ExpertInput.flat``) and ``out_dim``,
    and ``needs_fields = True`` if they read ``ExpertInput.fields``.

    Example:
        >>> from ranker.experts import MLPExpert
        >>> MLPExpert(8, (16, 4)).out_dim
        4
    """

    in_dim: int
    out_dim: int
    needs_fields: bool = False

    @abstractmethod
    def forward(self, inp: ExpertInput | Tensor) -> Tensor:
        """Map ``inp`` (or a bare ``[B, in_dim]`` tensor) to ``[B, out_dim]``."""

    @abstractmethod
    def output_weights(self) -> list[Tensor]:
        """Weight matrices of the layer that produces the output (GradNorm's "last layer")."""
