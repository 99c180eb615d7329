"""PEC: Pareto-efficient loss weights within bounds (after Lin et al., RecSys 2019, PE-LTR).

Each step the weights solve

    ``min_w || sum_k w_k g_k ||^2   s.t.  sum_k w_k = 1,  lower_k <= w_k <= upper_k``

with ``g_k`` task ``k``'s gradient on the shared parameters: the min-norm point
of the bounded convex hull of the task gradients, a common descent direction
when it is not zero (MGDA with the product owner's bounds). PE-LTR solves the
problem without the inequality constraints and then projects; here the QP is
solved exactly (:func:`~ranker.balancers._qp.min_norm_weights`). The model
then gets the gradient of ``sum_k w_k L_k``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from ranker.balancers._grads import task_gradients
from ranker.balancers._qp import min_norm_weights, project_bounded_simplex
from ranker.balancers.base import BaseBalancer, check_tasks, require_shared

__all__ = ["PECBalancer"]


def _bounds(
    tasks: tuple[str, ...], values: Mapping[str, float] | None, default: float, name: str
) -> np.ndarray:
    values = dict(values or {})
    unknown = sorted(set(values) - set(tasks))
    if unknown:
        raise ValueError(
            f"PECBalancer {name} name unknown task(s) {unknown}; valid: {list(tasks)}"
        )
    out = np.array([float(values.get(t, default)) for t in tasks])
    bad = [t for t, v in zip(tasks, out, strict=True) if not (math.isfinite(v) and 0 <= v <= 1)]
    if bad:
        raise ValueError(f"PECBalancer {name} for {bad} must be in [0, 1]")
    return out


class PECBalancer(BaseBalancer):
    """Per-step min-norm weights of the task gradients, within user-set bounds.

    ``T + 1`` backward passes per step, and a ``T x T`` QP warm-started from
    the last step's weights.

    Args:
        tasks: Task names.
        lower: Task -> lower bound on its weight (missing: 0).
        upper: Task -> upper bound on its weight (missing: 1).

    Raises:
        ValueError: Bounds outside [0, 1], a lower above its upper, or bounds no
            weights summing to 1 can meet (``sum lower > 1`` or ``sum upper < 1``).

    Example:
        >>> b = PECBalancer(["click", "buy"], lower={"buy": 0.2})
        >>> b.current_weights()
        {'click': 0.5, 'buy': 0.5}
    """

    weights: Tensor  # [T] the last step's weights

    def __init__(
        self,
        tasks: Sequence[str],
        lower: Mapping[str, float] | None = None,
        upper: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__()
        self.tasks = check_tasks(tasks, "PECBalancer")
        self.lower = _bounds(self.tasks, lower, 0.0, "lower")
        self.upper = _bounds(self.tasks, upper, 1.0, "upper")
        crossed = [
            t for t, lo, hi in zip(self.tasks, self.lower, self.upper, strict=True) if lo > hi
        ]
        if crossed:
            raise ValueError(f"PECBalancer: lower > upper for task(s) {crossed}")
        if self.lower.sum() > 1 + 1e-12 or self.upper.sum() < 1 - 1e-12:
            raise ValueError(
                f"PECBalancer bounds admit no weights summing to 1: sum lower = "
                f"{self.lower.sum():g} (must be <= 1), sum upper = {self.upper.sum():g} (>= 1)"
            )
        start = project_bounded_simplex(
            np.full(len(self.tasks), 1.0 / len(self.tasks)), self.lower, self.upper
        )
        self.register_buffer("weights", torch.tensor(start, dtype=torch.float32))  # [T]

    def solve(self, grads: Tensor) -> Tensor:
        """The bounded min-norm weights ``[T]`` of task gradients ``[T, P]``."""
        gram = (grads.double() @ grads.double().T).numpy()  # [T, T]
        w = min_norm_weights(gram, self.lower, self.upper, start=self.weights.double().numpy())
        return torch.from_numpy(w)

    def combine(self, losses: Mapping[str, Tensor]) -> Tensor:
        """``sum_k w_k L_k`` with the last step's weights."""
        return (self.weights * self._stack(losses)).sum()

    def current_weights(self) -> dict[str, float]:
        """Task -> the last step's weight."""
        return {t: float(w) for t, w in zip(self.tasks, self.weights, strict=True)}

    def backward(self, losses: Mapping[str, Tensor], shared: Sequence[Tensor] = ()) -> Tensor:
        """Solve for this step's weights, then backpropagate ``sum_k w_k L_k``."""
        params = require_shared(shared, "PECBalancer")
        stacked = self._stack(losses)  # [T]
        grads = task_gradients(stacked, params)  # [T, P]
        with torch.no_grad():
            self.weights.copy_(self.solve(grads))
        total = (self.weights * stacked).sum()
        total.backward()
        return total.detach()
