"""Dynamic weight average (Liu, Johns & Davison, CVPR 2019, "End-to-end multi-task
learning with attention").

With ``r_k = L_k(t-1) / L_k(t-2)`` the ratio of task ``k``'s mean training loss
over the last two epochs, epoch ``t`` uses

    ``w_k(t) = K * exp(r_k / T) / sum_i exp(r_i / T)``

(``K`` tasks, temperature ``T``); a task whose loss falls slowly gets more
weight. The first two epochs use ``w_k = 1``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from ranker.balancers.base import BaseBalancer, check_tasks

__all__ = ["DWABalancer", "dwa_weights"]


def dwa_weights(
    previous: Sequence[float], before: Sequence[float], temperature: float
) -> list[float]:
    """DWA weights from the mean losses of epochs ``t-1`` (``previous``) and ``t-2``.

    A task whose ``t-2`` loss is 0 gets ratio 1.

    Example:
        >>> [round(w, 4) for w in dwa_weights([1.0, 1.0], [1.0, 2.0], 2.0)]
        [1.1244, 0.8756]
    """
    ratios = [p / b if b > 0 else 1.0 for p, b in zip(previous, before, strict=True)]
    top = max(ratios)
    exps = [math.exp((r - top) / temperature) for r in ratios]
    return [len(ratios) * e / sum(exps) for e in exps]


class DWABalancer(BaseBalancer):
    """Weights from the rate at which each task's training loss fell over the last two epochs.

    One backward pass per step; the trainer hands over each epoch's mean task
    losses through :meth:`on_epoch_end`.

    Args:
        tasks: Task names.
        temperature: ``T > 0``; larger is closer to equal weights (the paper uses 2).

    Example:
        >>> b = DWABalancer(["a", "b"])
        >>> b.on_epoch_end({"a": 1.0, "b": 2.0}); b.on_epoch_end({"a": 1.0, "b": 1.0})
        >>> {t: round(w, 4) for t, w in b.current_weights().items()}
        {'a': 1.1244, 'b': 0.8756}
    """

    loss_history: Tensor  # [2, T] float64
    n_epochs: Tensor  # [] long
    weights: Tensor  # [T]

    def __init__(self, tasks: Sequence[str], temperature: float = 2.0) -> None:
        super().__init__()
        self.tasks = check_tasks(tasks, "DWABalancer")
        if not isinstance(temperature, int | float) or not 0 < temperature < math.inf:
            raise ValueError(
                f"DWABalancer temperature must be a finite number > 0, got {temperature!r}"
            )
        self.temperature = float(temperature)
        # [2, T] mean losses of epochs t-2 and t-1; n_epochs counts how many are real
        self.register_buffer("loss_history", torch.zeros(2, len(self.tasks), dtype=torch.float64))
        self.register_buffer("n_epochs", torch.zeros((), dtype=torch.long))
        self.register_buffer("weights", torch.ones(len(self.tasks)))

    def on_epoch_end(self, epoch_losses: Mapping[str, float]) -> None:
        """Record the epoch's mean task losses and set the next epoch's weights."""
        missing = [t for t in self.tasks if t not in epoch_losses]
        if missing:
            raise ValueError(
                f"DWA needs the epoch loss of task(s) {missing}; got {sorted(epoch_losses)}"
            )
        row = torch.tensor([float(epoch_losses[t]) for t in self.tasks], dtype=torch.float64)
        self.loss_history.copy_(torch.stack([self.loss_history[1], row]))
        self.n_epochs += 1
        if int(self.n_epochs) >= 2:
            w = dwa_weights(
                self.loss_history[1].tolist(), self.loss_history[0].tolist(), self.temperature
            )
            self.weights.copy_(torch.tensor(w))

    def combine(self, losses: Mapping[str, Tensor]) -> Tensor:
        """``sum_k w_k * L_k`` with this epoch's weights."""
        return (self.weights * self._stack(losses)).sum()

    def current_weights(self) -> dict[str, float]:
        """Task -> this epoch's weight."""
        return {t: float(w) for t, w in zip(self.tasks, self.weights, strict=True)}
