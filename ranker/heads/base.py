"""The head extension point: per-task representations -> per-task logits."""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import Tensor, nn

__all__ = ["Heads"]


class Heads(nn.Module, ABC):
    """Base of output heads (independent towers now; ESMM and chained heads later).

    Output logits are keyed by task name; for a task with sample space
    ``"after:x"`` the logit is that of the probability *conditional* on ``x``.

    Example:
        >>> import torch
        >>> from ranker.heads import Towers
        >>> sorted(Towers({"a": 4, "b": 4}, (8,))(
        ...     {"a": torch.zeros(2, 4), "b": torch.zeros(2, 4)}))
        ['a', 'b']
    """

    @abstractmethod
    def forward(self, reps: dict[str, Tensor]) -> dict[str, Tensor]:
        """Map task -> ``[B, d_task]`` to task -> logits ``[B]``."""
