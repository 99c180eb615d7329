"""Uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018).

Each task ``k`` has a learned log-variance ``s_k = log sigma_k^2`` and the
loss is ``L = sum_k exp(-s_k) * L_k + s_k``: a noisy task (large irreducible
loss) gets a large ``s_k`` and so a small weight ``exp(-s_k)``, and the ``+ s_k``
term keeps every ``s_k`` from growing without bound. At the optimum for fixed
``L_k``, ``s_k = log L_k``.

This is the form used by most multi-task code (LibMTL, torch-rechub): the
paper's regression loss ``1/(2 sigma^2) L + log sigma`` times 2. The paper's
classification variant, ``1/sigma^2 L + log sigma = exp(-s) L + s / 2``, only
halves the regularizer (optimum ``s_k = log 2 L_k``); ranking by weight is the
same, so one form is kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from ranker.balancers.base import BaseBalancer, check_tasks

__all__ = ["UncertaintyBalancer"]


class UncertaintyBalancer(BaseBalancer):
    """Learned homoscedastic-uncertainty weights ``exp(-s_k)``, optimized with the model.

    One backward pass per step; ``s`` is a parameter, so the trainer's
    optimizer updates it together with the model.

    Args:
        tasks: Task names, in the order of :attr:`log_vars`.
        init_log_var: Starting ``s_k`` for every task (0: weight 1).

    Example:
        >>> b = UncertaintyBalancer(["a", "b"])
        >>> b.combine({"a": torch.tensor(2.0), "b": torch.tensor(1.0)})
        tensor(3., grad_fn=<SumBackward0>)
    """

    def __init__(self, tasks: Sequence[str], init_log_var: float = 0.0) -> None:
        super().__init__()
        self.tasks = check_tasks(tasks, "UncertaintyBalancer")
        self.log_vars = nn.Parameter(torch.full((len(self.tasks),), float(init_log_var)))  # [T]

    def combine(self, losses: Mapping[str, Tensor]) -> Tensor:
        """``sum_k exp(-s_k) * L_k + s_k``; differentiable in ``s``."""
        return (torch.exp(-self.log_vars) * self._stack(losses) + self.log_vars).sum()

    def current_weights(self) -> dict[str, float]:
        """Task -> ``exp(-s_k)``."""
        w = torch.exp(-self.log_vars.detach())
        return {t: float(v) for t, v in zip(self.tasks, w, strict=True)}

    def variances(self) -> dict[str, float]:
        """Task -> learned variance ``sigma_k^2 = exp(s_k)``."""
        return {t: float(v) for t, v in zip(self.tasks, self.log_vars.detach().exp(), strict=True)}
