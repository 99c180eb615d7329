"""Worlds with known ground truth: they generate logged traffic and give the
true value of any policy on it."""

from __future__ import annotations

from simulator.worlds._base import BaseWorld
from simulator.worlds._kuairand import KuaiRandConfig, KuaiRandWorld
from simulator.worlds._kuairand_fit import (
    FitConfig,
    FitQuality,
    KuaiRandFit,
    evaluate_response_model,
    load_response_model,
)
from simulator.worlds._marketplace import MarketplaceConfig, MarketplaceWorld

__all__ = [
    "BaseWorld",
    "FitConfig",
    "FitQuality",
    "KuaiRandConfig",
    "KuaiRandFit",
    "KuaiRandWorld",
    "MarketplaceConfig",
    "MarketplaceWorld",
    "evaluate_response_model",
    "load_response_model",
]
