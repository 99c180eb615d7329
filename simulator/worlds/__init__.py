"""Worlds with known ground truth: they generate logged traffic and give the
true value of any policy on it."""

from __future__ import annotations

from simulator.worlds._base import BaseWorld
from simulator.worlds._marketplace import MarketplaceConfig, MarketplaceWorld

__all__ = ["BaseWorld", "MarketplaceConfig", "MarketplaceWorld"]
