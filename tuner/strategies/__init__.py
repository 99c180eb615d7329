"""Search strategies: CEM as an ask/tell strategy and as an Optuna sampler; steady-state
CEM; Optuna's samplers as ask/tell baselines; ``STRATEGIES`` names them all, each with its
config class. Multi-objective (Pareto) strategies: NSGA-II and CEM over scalarisations."""

from __future__ import annotations

from tuner.strategies._base import BaseStrategy, initial_mean
from tuner.strategies._cem import CEM, CEMConfig, CEMState
from tuner.strategies._multi import BaseMultiStrategy
from tuner.strategies._nsga2_multi import NSGA2Multi
from tuner.strategies._optuna_baselines import (
    OptunaStrategy,
    SamplerFactory,
    cmaes,
    nsga2,
    random_search,
    tpe,
)
from tuner.strategies._optuna_sampler import CEMSampler
from tuner.strategies._registry import (
    STRATEGIES,
    StrategyEntry,
    make_config,
    make_strategy,
    strategy_name,
)
from tuner.strategies._sampler_configs import CMAESConfig, NSGA2Config, RandomConfig, TPEConfig
from tuner.strategies._scalarised_cem import (
    SCALARISATIONS,
    ScalarisedCEM,
    ScalarisedCEMConfig,
    simplex_directions,
)
from tuner.strategies._smooth_cem import SmoothCEM, SmoothCEMConfig
from tuner.strategies._steady_cem import SteadyCEM, SteadyCEMConfig

__all__ = [
    "CEM",
    "SCALARISATIONS",
    "STRATEGIES",
    "BaseMultiStrategy",
    "BaseStrategy",
    "CEMConfig",
    "CEMSampler",
    "CEMState",
    "CMAESConfig",
    "NSGA2Config",
    "NSGA2Multi",
    "OptunaStrategy",
    "RandomConfig",
    "SamplerFactory",
    "SmoothCEM",
    "SmoothCEMConfig",
    "ScalarisedCEM",
    "ScalarisedCEMConfig",
    "SteadyCEM",
    "SteadyCEMConfig",
    "StrategyEntry",
    "TPEConfig",
    "cmaes",
    "initial_mean",
    "make_config",
    "make_strategy",
    "nsga2",
    "random_search",
    "simplex_directions",
    "strategy_name",
    "tpe",
]
