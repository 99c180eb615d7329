"""Static loss weights: ``L = sum_t w_t * L_t``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Self

import torch
from torch import Tensor

from ranker.balancers.base import BaseBalancer

__all__ = ["StaticBalancer", "check_loss_weights"]


def check_loss_weights(
    weights: Mapping[str, float] | None, tasks: Sequence[str]
) -> dict[str, float]:
    """Validate loss weights against the task names; ``None`` means 1 for every task.

    Tasks missing from ``weights`` get weight 1.

    Args:
        weights: Task -> finite weight >= 0, or None.
        tasks: The model's task names.

    Returns:
        Task -> weight for every task.

    Raises:
        ValueError: A weight names an unknown task, or is negative or not finite.

    Example:
        >>> check_loss_weights({"b": 0.5}, ["a", "b"])
        {'a': 1.0, 'b': 0.5}
    """
    weights = dict(weights or {})
    unknown = sorted(set(weights) - set(tasks))
    if unknown:
        raise ValueError(
            f"loss_weights name unknown task(s) {unknown}; valid tasks: {list(tasks)}"
        )
    for task, w in weights.items():
        if not isinstance(w, int | float) or not math.isfinite(w) or w < 0:
            raise ValueError(f"loss_weights[{task!r}] = {w!r}; valid: a finite number >= 0")
    return {t: float(weights.get(t, 1.0)) for t in tasks}


class StaticBalancer(BaseBalancer):
    """Weighted sum of task losses with fixed weights: ``L = sum_t w_t * L_t``.

    One backward pass per step, and its weighted sum is also the early-stopping
    objective.

    Args:
        weights: Task -> weight >= 0 for every task to combine.

    Example:
        >>> StaticBalancer({"a": 2.0}).combine({"a": torch.tensor(1.5)})
        tensor(3.)
    """

    def __init__(self, weights: Mapping[str, float]) -> None:
        super().__init__()
        self.weights = check_loss_weights(weights, list(weights))
        self.tasks = tuple(self.weights)

    @classmethod
    def build(cls, tasks: Sequence[str], **options: Any) -> Self:
        """Static weights for ``tasks`` from ``weights=``; missing tasks (or all, if None) get 1.

        Example:
            >>> StaticBalancer.build(["a", "b"], weights={"b": 3.0}).weights
            {'a': 1.0, 'b': 3.0}
        """
        weights = options.pop("weights", None)
        if options:
            raise ValueError(
                f"StaticBalancer options {sorted(options)} unknown; valid: ['weights']"
            )
        return cls(check_loss_weights(weights, list(tasks)))

    def combine(self, losses: Mapping[str, Tensor]) -> Tensor:
        """Return ``sum_t w_t * losses[t]`` over the balancer's tasks."""
        total = torch.zeros(())
        for task in self._present(losses):
            total = total + self.weights[task] * losses[task]
        return total

    def current_weights(self) -> dict[str, float]:
        """The fixed weights."""
        return dict(self.weights)

    def validation_loss(self, losses: Mapping[str, Tensor]) -> Tensor:
        """The same weighted sum (the weights never move)."""
        return self.combine(losses)
