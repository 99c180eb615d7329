"""Factorization-machine expert (Rendle, ICDM 2010): second-order field interactions.

The pairwise term ``sum_{i<j} <v_i, v_j>`` is computed in ``O(F k)`` as
``0.5 * ((sum_i v_i)^2 - sum_i v_i^2)`` summed over the ``k`` embedding
dimensions; kept per dimension (not summed) it is the bi-interaction vector
of NFM, which this expert projects to its output width.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn

from ranker.experts.base import Expert, ExpertInput

__all__ = ["FMExpert", "fm_interaction"]


def fm_interaction(fields: Tensor) -> Tensor:
    """Per-dimension pairwise interaction ``sum_{i<j} v_i * v_j`` in ``O(F k)``.

    Args:
        fields: ``[B, F, k]`` field vectors.

    Returns:
        ``[B, k]``; its sum over ``k`` is the FM second-order term.

    Example:
        >>> v = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
        >>> fm_interaction(v)
        tensor([[3., 8.]])
    """
    total = fields.sum(dim=1)  # [B, k]
    return 0.5 * (total * total - (fields * fields).sum(dim=1))  # [B, k]


class FMExpert(Expert):
    """FM on the field vectors: a logit (``out_dim == 1``) or a small vector.

    With ``out_dim == 1`` the output is the classic FM logit: a linear term on
    the flat input plus the summed pairwise interactions. Otherwise the linear
    term and the ``k``-wide interaction vector are projected (``Linear -> ReLU``)
    to ``out_dim``, so FM experts mix with MLP experts under one gate.

    Args:
        in_dim: Width of the flat input (for the first-order term).
        field_dim: Width ``k`` of each field vector.
        out_dim: Output width.

    Example:
        >>> from ranker.experts import ExpertInput
        >>> fm = FMExpert(6, 3, 4)
        >>> fm(ExpertInput(torch.zeros(5, 6), torch.zeros(5, 2, 3))).shape
        torch.Size([5, 4])
    """

    needs_fields = True

    def __init__(self, in_dim: int, field_dim: int, out_dim: int) -> None:
        super().__init__()
        if min(in_dim, field_dim, out_dim) < 1:
            raise ValueError(
                f"FMExpert widths must be >= 1, got in_dim={in_dim}, "
                f"field_dim={field_dim}, out_dim={out_dim}"
            )
        self.in_dim, self.field_dim, self.out_dim = in_dim, field_dim, out_dim
        self.linear = nn.Linear(in_dim, 1)
        self.project = (
            None if out_dim == 1 else nn.Sequential(nn.Linear(field_dim + 1, out_dim), nn.ReLU())
        )

    def output_weights(self) -> list[Tensor]:
        """The output projection's weight, or the first-order weight where there is none."""
        if self.project is None:
            return [self.linear.weight]
        return [cast(nn.Linear, self.project[0]).weight]

    def forward(self, inp: ExpertInput | Tensor) -> Tensor:
        """Map ``inp`` (flat ``[B, in_dim]``, fields ``[B, F, k]``) to ``[B, out_dim]``."""
        inp = ExpertInput.of(inp)
        if inp.fields is None:
            raise ValueError(
                "FMExpert needs ExpertInput.fields [B, F, k]; build the model with a "
                "FieldStack (model builders do so when an expert kind is 'fm')"
            )
        first = self.linear(inp.flat)  # [B, 1]
        pairs = fm_interaction(inp.fields)  # [B, k]
        if self.project is None:
            return first + pairs.sum(dim=1, keepdim=True)  # [B, 1]
        return self.project(torch.cat([first, pairs], dim=1))  # type: ignore[no-any-return]
