"""PCGrad, gradient surgery (Yu et al., NeurIPS 2020, Algorithm 1).

For each task ``i``, start from its gradient ``g_i`` on the shared parameters
and, for every other task ``j`` in a random order, if ``g_i^PC . g_j < 0``
project ``g_i^PC`` onto the normal plane of ``g_j``:

    ``g_i^PC <- g_i^PC - (g_i^PC . g_j) / ||g_j||^2 * g_j``

The shared parameters get ``sum_i g_i^PC``; task-specific parameters get the
plain sum of the task gradients (the loss reaching them is one task's anyway).
Written here rather than taken from ``torchjd``: that library's PCGrad draws
its task order from the global torch RNG (it cannot take a seeded generator,
so it would couple to dropout and break same-seed runs), and the algorithm is
a dozen lines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from ranker.balancers._grads import task_gradients, write_gradients
from ranker.balancers.base import BaseBalancer, check_tasks, require_shared

__all__ = ["PCGradBalancer", "pcgrad"]


def pcgrad(grads: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Project conflicting task gradients (Algorithm 1) and sum them.

    Projections use the original ``g_j``, as in the paper. A zero ``g_j``
    never conflicts.

    Args:
        grads: ``[T, P]`` task gradients.
        generator: Draws each task's order over the other tasks.

    Returns:
        ``[P]`` the sum of the projected gradients.

    Example:
        >>> pcgrad(torch.tensor([[1.0, 0.0], [-1.0, 1.0]]))
        tensor([0.5000, 1.5000])
    """
    n_tasks = grads.shape[0]
    sq_norms = (grads * grads).sum(dim=1)  # [T]
    out = torch.zeros_like(grads[0])
    for i in range(n_tasks):
        g = grads[i].clone()
        for j in torch.randperm(n_tasks, generator=generator).tolist():
            if j == i:
                continue
            dot = torch.dot(g, grads[j])
            if dot < 0:
                g = g - dot / sq_norms[j] * grads[j]
        out += g
    return out


class PCGradBalancer(BaseBalancer):
    """Sum of the task losses, with conflicting shared-parameter gradients projected away.

    ``T + 1`` backward passes per step (one per task on the shared parameters,
    one for the rest).

    Args:
        tasks: Task names.
        seed: Seed of the generator drawing the task orders.

    Example:
        >>> b = PCGradBalancer(["a", "b"], seed=0)
        >>> w = torch.tensor([1.0, 1.0], requires_grad=True)
        >>> total = b.backward({"a": w[0] - w[1], "b": w[1] - w[0] + w[1]}, shared=[w])
        >>> w.grad
        tensor([0.9000, 0.7000])
    """

    def __init__(self, tasks: Sequence[str], seed: int = 0) -> None:
        super().__init__()
        self.tasks = check_tasks(tasks, "PCGradBalancer")
        self.seed = int(seed)
        self.generator = torch.Generator().manual_seed(self.seed)

    def combine(self, losses: Mapping[str, Tensor]) -> Tensor:
        """The unweighted sum of the task losses."""
        return self._stack(losses).sum()

    def current_weights(self) -> dict[str, float]:
        """1 for every task (PCGrad edits directions, not loss weights)."""
        return dict.fromkeys(self.tasks, 1.0)

    def backward(self, losses: Mapping[str, Tensor], shared: Sequence[Tensor] = ()) -> Tensor:
        """Backpropagate the sum, then replace the shared gradients by PCGrad's."""
        params = require_shared(shared, "PCGradBalancer")
        stacked = self._stack(losses)  # [T]
        grads = task_gradients(stacked, params)  # [T, P]
        total = stacked.sum()
        total.backward()
        write_gradients(params, pcgrad(grads, self.generator))
        return total.detach()
