"""Field stacking: the flat embedding output re-cut into one ``d``-wide vector per feature.

FM experts need every feature as a vector of one common width. The flat input
is laid out as :class:`~ranker.features.FeatureEmbedding` writes it
(categorical embeddings and pooled sequences, then standardized numerics), so the
fields are slices of it: a categorical embedding of another width is mapped
to ``d`` by a bias-free linear map, and numeric feature ``j`` becomes
``value_j * v_j`` with a learned vector ``v_j`` (as in FM on real values).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["FieldStack"]


class FieldStack(nn.Module):
    """``[B, sum(cat_dims) + n_num] -> [B, n_cat + n_num, field_dim]``.

    Args:
        cat_dims: Width of each id block of the flat input (categorical embeddings,
            then pooled sequences: :attr:`~ranker.features.FeatureEmbedding.id_dims`).
        n_num: Number of numeric features (the last ``n_num`` flat columns).
        field_dim: Common width ``d`` of every field vector.

    Example:
        >>> FieldStack([4, 4], 1, 4)(torch.zeros(3, 9)).shape
        torch.Size([3, 3, 4])
    """

    def __init__(self, cat_dims: Sequence[int], n_num: int, field_dim: int) -> None:
        super().__init__()
        if field_dim < 1:
            raise ValueError(f"FieldStack field_dim must be >= 1, got {field_dim}")
        if not cat_dims and n_num == 0:
            raise ValueError("FieldStack needs at least one feature")
        self.cat_dims = tuple(int(d) for d in cat_dims)
        self.n_num = n_num
        self.field_dim = field_dim
        self.in_dim = sum(self.cat_dims) + n_num
        self.n_fields = len(self.cat_dims) + n_num
        # Identity when every embedding already has width d: a reshape, no parameters.
        self.same_width = all(d == field_dim for d in self.cat_dims)
        self.projections = nn.ModuleList(
            [] if self.same_width else [nn.Linear(d, field_dim, bias=False) for d in cat_dims]
        )
        self.numeric_vectors = nn.Parameter(torch.randn(n_num, field_dim) * 0.05)

    def forward(self, flat: Tensor) -> Tensor:
        """Cut ``flat`` ``[B, in_dim]`` into fields ``[B, n_fields, field_dim]``."""
        batch = flat.shape[0]
        n_cat_cols = sum(self.cat_dims)
        parts: list[Tensor] = []
        if self.cat_dims:
            if self.same_width:
                parts.append(flat[:, :n_cat_cols].reshape(batch, -1, self.field_dim))
            else:
                chunks = flat[:, :n_cat_cols].split(list(self.cat_dims), dim=1)
                projected = [p(c) for p, c in zip(self.projections, chunks, strict=True)]
                parts.append(torch.stack(projected, 1))  # [B, n_cat, d]
        if self.n_num:
            values = flat[:, n_cat_cols:]  # [B, n_num]
            parts.append(values.unsqueeze(-1) * self.numeric_vectors)  # [B, n_num, d]
        return torch.cat(parts, dim=1)  # [B, n_fields, d]
