"""Search strategies: CEM as an ask/tell strategy and as an Optuna sampler."""

from __future__ import annotations

from tuner.strategies._base import BaseStrategy
from tuner.strategies._cem import CEM, CEMConfig, CEMState
from tuner.strategies._optuna_sampler import CEMSampler

__all__ = ["CEM", "BaseStrategy", "CEMConfig", "CEMSampler", "CEMState"]
