"""The loss-balancer extension point: how per-task losses become one training loss.

Loss weighting is kept apart from architecture (LibMTL's good idea): a model
never knows how its losses are combined.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import Tensor, nn

__all__ = ["BaseBalancer"]


class BaseBalancer(nn.Module, ABC):
    """Base of loss balancers (static weights now; uncertainty, GradNorm, PCGrad later).

    A balancer is an ``nn.Module`` so that learned weights (uncertainty
    weighting) are optimized with the model: the trainer adds
    ``balancer.parameters()`` to its optimizer.

    Example:
        >>> from ranker.balancers import StaticBalancer
        >>> import torch
        >>> StaticBalancer({"a": 1.0, "b": 0.5}).combine(
        ...     {"a": torch.tensor(2.0), "b": torch.tensor(2.0)})
        tensor(3.)
    """

    @abstractmethod
    def combine(self, losses: dict[str, Tensor]) -> Tensor:
        """Combine task -> scalar loss into one scalar to minimize."""

    def backward(self, losses: dict[str, Tensor]) -> Tensor:
        """Backpropagate one training step; returns the (detached) combined loss.

        The default is ``combine(losses).backward()``; balancers that edit
        gradients (PCGrad, GradNorm) override this hook.

        Args:
            losses: Task -> scalar loss of the current batch.
        """
        total = self.combine(losses)
        total.backward()
        return total.detach()
