"""Independent towers: one MLP per task ending in a single logit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor, nn

from ranker.experts.mlp import make_mlp
from ranker.heads.base import Heads

__all__ = ["Towers"]


class Towers(Heads):
    """One ``MLP -> Linear(., 1)`` tower per task.

    Args:
        in_dims: Task -> width of its representation from the backbone.
        hidden: Hidden widths of every tower (may be empty: a linear head).
        dropout: Dropout probability after each hidden layer.

    Example:
        >>> import torch
        >>> towers = Towers({"click": 4}, (8,))
        >>> towers({"click": torch.zeros(3, 4)})["click"].shape
        torch.Size([3])
    """

    def __init__(
        self, in_dims: Mapping[str, int], hidden: Sequence[int], dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.towers = nn.ModuleDict()
        for task, dim in in_dims.items():
            width = hidden[-1] if hidden else dim
            self.towers[task] = nn.Sequential(make_mlp(dim, hidden, dropout), nn.Linear(width, 1))

    def forward(self, reps: dict[str, Tensor]) -> dict[str, Tensor]:
        """Map task -> ``[B, d_task]`` to task -> logits ``[B]``."""
        return {t: tower(reps[t]).squeeze(-1) for t, tower in self.towers.items()}  # [B]
