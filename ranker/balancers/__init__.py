"""Loss balancers: per-task losses -> one training loss (static weights now)."""

from __future__ import annotations

from ranker.balancers.base import BaseBalancer
from ranker.balancers.static import StaticBalancer, check_loss_weights

__all__ = ["BaseBalancer", "StaticBalancer", "check_loss_weights"]
