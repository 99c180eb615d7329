"""The loss-balancer extension point: how per-task losses become one training step.

Loss weighting is kept apart from architecture (LibMTL's good idea): a model
never knows how its losses are combined, and a balancer never looks inside a
model. What a balancer needs is handed to it explicitly by the trainer: the
batch's task losses and the parameters all tasks share (for the balancers that
work on gradients), and, once per epoch, the epoch's mean task losses.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, Self

import torch
from torch import Tensor, nn

__all__ = ["BaseBalancer", "check_tasks"]


def check_tasks(tasks: Sequence[str], where: str) -> tuple[str, ...]:
    """Validate a balancer's task names: a non-empty sequence of distinct strings.

    Example:
        >>> check_tasks(["click", "like"], "DWA")
        ('click', 'like')
    """
    if isinstance(tasks, str) or not tasks:
        raise ValueError(f"{where} needs a non-empty list of task names, got {tasks!r}")
    names = tuple(tasks)
    if any(not isinstance(t, str) for t in names) or len(set(names)) != len(names):
        raise ValueError(f"{where}: task names must be distinct strings, got {list(names)}")
    return names


class BaseBalancer(nn.Module, ABC):
    """Base of loss balancers: static, uncertainty, GradNorm, PCGrad, DWA, PEC.

    A balancer is an ``nn.Module`` so that learned weights (uncertainty
    weighting, GradNorm) are optimized with the model: the trainer adds
    ``balancer.parameters()`` to its optimizer, calls :meth:`backward` once per
    batch (between ``zero_grad`` and ``step``) and :meth:`on_epoch_end` once per
    epoch. Early stopping uses :meth:`validation_loss`, which must not change
    during training (a loss whose weights move cannot rank epochs).

    Example:
        >>> from ranker.balancers import StaticBalancer
        >>> import torch
        >>> StaticBalancer({"a": 1.0, "b": 0.5}).combine(
        ...     {"a": torch.tensor(2.0), "b": torch.tensor(2.0)})
        tensor(3.)
    """

    tasks: tuple[str, ...]
    gradient_scope: str = "all"
    """Which shared parameters the trainer hands :meth:`backward`: ``"all"``
    (``model.shared_parameters()``) or ``"last"`` (``model.last_shared_parameters()``,
    the weights of the last layer all tasks share)."""

    @classmethod
    def build(cls, tasks: Sequence[str], **options: Any) -> Self:
        """Make a balancer for ``tasks`` from config-file options (see ``BALANCERS``).

        The default is ``cls(tasks, **options)``; a balancer whose constructor
        takes something else overrides this.

        Example:
            >>> from ranker.balancers import DWABalancer
            >>> DWABalancer.build(["a", "b"], temperature=1.0).temperature
            1.0
        """
        return cls(tasks, **options)

    @abstractmethod
    def combine(self, losses: Mapping[str, Tensor]) -> Tensor:
        """Combine task -> scalar loss into the scalar this balancer minimizes now."""

    @abstractmethod
    def current_weights(self) -> dict[str, float]:
        """Task -> the weight the balancer gives that task's loss now (for logs and tests)."""

    def backward(self, losses: Mapping[str, Tensor], shared: Sequence[Tensor] = ()) -> Tensor:
        """Backpropagate one training step; returns the (detached) combined loss.

        The default is ``combine(losses).backward()`` (one backward pass);
        balancers that work on gradients (PCGrad, GradNorm, PEC) override this
        hook and need ``shared``.

        Args:
            losses: Task -> scalar loss of the current batch.
            shared: The parameters all tasks share that require grad, in a fixed
                order: ``model.shared_parameters()``, or
                ``model.last_shared_parameters()`` where :attr:`gradient_scope` is
                ``"last"``.
        """
        total = self.combine(losses)
        total.backward()
        return total.detach()

    def on_epoch_end(self, epoch_losses: Mapping[str, float]) -> None:
        """Called once after each training epoch with task -> mean training loss.

        The default does nothing; DWA keeps a loss history here.
        """

    def validation_loss(self, losses: Mapping[str, Tensor]) -> Tensor:
        """The fixed objective that ranks epochs for early stopping.

        The default is the unweighted sum of the task losses; the static
        balancer uses its weighted sum.
        """
        return torch.stack([losses[t] for t in self._present(losses)]).sum()

    def _present(self, losses: Mapping[str, Tensor]) -> tuple[str, ...]:
        """The balancer's tasks, after checking that ``losses`` has each of them."""
        missing = [t for t in self.tasks if t not in losses]
        if missing:
            raise ValueError(f"no loss for task(s) {missing}; got {sorted(losses)}")
        return self.tasks

    def _stack(self, losses: Mapping[str, Tensor]) -> Tensor:
        """``[T]`` losses in the balancer's task order."""
        return torch.stack([losses[t] for t in self._present(losses)])


def require_shared(shared: Sequence[Tensor], where: str) -> list[Tensor]:
    """``shared`` as a list, or ValueError saying the balancer needs the shared parameters."""
    params = list(shared)
    if not params:
        raise ValueError(
            f"{where} works on the gradients of the shared parameters; pass "
            "backward(losses, shared=[p for p in model.shared_parameters() if p.requires_grad])"
        )
    return params
