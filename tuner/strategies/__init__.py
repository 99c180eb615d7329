"""Search strategies: CEM as an ask/tell strategy and as an Optuna sampler; steady-state
CEM; Optuna's samplers as ask/tell baselines; ``STRATEGIES`` names them all. Multi-objective
(Pareto) strategies: NSGA-II and CEM over scalarisations."""

from __future__ import annotations

from collections.abc import Callable

from tuner.space import FusionSpace
from tuner.strategies._base import BaseStrategy
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
from tuner.strategies._scalarised_cem import (
    SCALARISATIONS,
    ScalarisedCEM,
    ScalarisedCEMConfig,
    simplex_directions,
)
from tuner.strategies._steady_cem import SteadyCEM, SteadyCEMConfig

StrategyFactory = Callable[[FusionSpace, int, int], BaseStrategy]
"""``(space, population, seed) -> strategy`` with default hyperparameters otherwise."""


def cem(space: FusionSpace, population: int = 32, seed: int = 0) -> CEM:
    """:class:`CEM` with ``CEMConfig(population=population)``."""
    return CEM(space, CEMConfig(population=population), seed)


def steady_cem(space: FusionSpace, population: int = 32, seed: int = 0) -> SteadyCEM:
    """:class:`SteadyCEM` with ``SteadyCEMConfig(population=population)``."""
    return SteadyCEM(space, SteadyCEMConfig(population=population), seed)


STRATEGIES: dict[str, StrategyFactory] = {
    "cem": cem,
    "steady_cem": steady_cem,
    "tpe": tpe,
    "cmaes": cmaes,
    "random": random_search,
    "nsga2": nsga2,
}
"""Every ask/tell strategy by name, for benches and command lines (``"cmaes"`` needs the
``cmaes`` package, the ``bench`` extra)."""

__all__ = [
    "CEM",
    "SCALARISATIONS",
    "STRATEGIES",
    "BaseMultiStrategy",
    "BaseStrategy",
    "CEMConfig",
    "CEMSampler",
    "CEMState",
    "NSGA2Multi",
    "OptunaStrategy",
    "SamplerFactory",
    "ScalarisedCEM",
    "ScalarisedCEMConfig",
    "SteadyCEM",
    "SteadyCEMConfig",
    "StrategyFactory",
    "cem",
    "cmaes",
    "nsga2",
    "random_search",
    "simplex_directions",
    "steady_cem",
    "tpe",
]
