"""``STRATEGIES``: every single-objective strategy by name, with its config class and the
factory that builds it, so a study stores a strategy as ``(name, config)`` and the loop,
the workers, the picks and the CLI rebuild it from the database alone."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.samplers import CmaEsSampler, NSGAIISampler, RandomSampler, TPESampler

from tuner.space import FusionSpace
from tuner.strategies._base import BaseStrategy
from tuner.strategies._cem import CEM, CEMConfig
from tuner.strategies._optuna_baselines import OptunaStrategy, require_cmaes
from tuner.strategies._sampler_configs import CMAESConfig, NSGA2Config, RandomConfig, TPEConfig
from tuner.strategies._smooth_cem import SmoothCEM, SmoothCEMConfig
from tuner.strategies._steady_cem import SteadyCEM, SteadyCEMConfig

__all__ = [
    "STRATEGIES",
    "StrategyEntry",
    "make_config",
    "make_strategy",
    "strategy_name",
]

Builder = Callable[[FusionSpace, Any, int, "np.ndarray | None"], BaseStrategy]
"""``(space, config, seed, init_mean) -> strategy``; ``init_mean`` is ``[dim]``, full
weights ``[T]`` or None (the box centre)."""


@dataclass(frozen=True)
class StrategyEntry:
    """One registered strategy.

    Args:
        config: its frozen config class; every one has a ``population`` field.
        build: ``(space, config, seed, init_mean) -> strategy``.
        summary: one line for ``--help``.
    """

    config: type
    build: Builder
    summary: str

    def create(self, space: FusionSpace, population: int = 32, seed: int = 0,
               init_mean: np.ndarray | None = None, **hyper: Any) -> BaseStrategy:
        """The strategy with ``population``, ``hyper`` and defaults for the rest."""
        return self.build(space, self.config(population=population, **hyper), seed, init_mean)


def _optuna(space: FusionSpace, config: Any, seed: int,
            factory: Callable[[int], Any]) -> OptunaStrategy:
    strategy = OptunaStrategy(space, factory, config.population, seed)
    strategy.config = config
    return strategy


def _tpe(space: FusionSpace, config: TPEConfig, seed: int,
         init_mean: np.ndarray | None) -> BaseStrategy:
    return _optuna(space, config, seed,
                   lambda s: TPESampler(seed=s, n_startup_trials=config.n_startup_trials))


def _cmaes(space: FusionSpace, config: CMAESConfig, seed: int,
           init_mean: np.ndarray | None) -> BaseStrategy:
    require_cmaes()
    return _optuna(space, config, seed,
                   lambda s: CmaEsSampler(seed=s, popsize=config.population))


def _random(space: FusionSpace, config: RandomConfig, seed: int,
            init_mean: np.ndarray | None) -> BaseStrategy:
    return _optuna(space, config, seed, lambda s: RandomSampler(seed=s))


def _nsga2(space: FusionSpace, config: NSGA2Config, seed: int,
           init_mean: np.ndarray | None) -> BaseStrategy:
    return _optuna(space, config, seed,
                   lambda s: NSGAIISampler(seed=s, population_size=config.population))


STRATEGIES: dict[str, StrategyEntry] = {
    "cem": StrategyEntry(CEMConfig, CEM, "cross-entropy method; exports its mean"),
    "steady-cem": StrategyEntry(SteadyCEMConfig, SteadyCEM,
                                "CEM that replaces only the worst members each round"),
    "smooth-cem": StrategyEntry(SmoothCEMConfig, SmoothCEM,
                                "CEM ranking elites on a smoothed surface, with a spread that "
                                "stops shrinking on noise"),
    "tpe": StrategyEntry(TPEConfig, _tpe, "Optuna's TPE; exports its best trial"),
    "cmaes": StrategyEntry(CMAESConfig, _cmaes,
                           "Optuna's CMA-ES (needs the cmaes package); its best trial"),
    "random": StrategyEntry(RandomConfig, _random, "uniform random search; its best trial"),
    "nsga2": StrategyEntry(NSGA2Config, _nsga2,
                           "Optuna's NSGA-II on one objective; its best trial"),
}
"""Every single-objective ask/tell strategy by name. Adding one is a module with its
strategy and config, and one line here; ``tests/tuner/test_strategy_contract.py`` runs each
through the study loop, resume and workers."""


def strategy_name(config: Any) -> str:
    """The registered name of the strategy whose config ``config`` is."""
    for name, entry in STRATEGIES.items():
        if type(config) is entry.config:
            return name
    raise ValueError(f"{type(config).__name__} is not the config of a registered strategy; "
                     f"registered: {sorted(STRATEGIES)}")


def _entry(name: str) -> StrategyEntry:
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; valid: {', '.join(STRATEGIES)}")
    return STRATEGIES[name]


def make_config(name: str, values: Mapping[str, Any]) -> Any:
    """The config of strategy ``name`` from ``values`` (stored JSON or a search file).

    Raises:
        ValueError: unknown strategy or key (the message lists the valid ones), or a value
            the config refuses.
    """
    entry = _entry(name)
    fields = [f.name for f in dataclasses.fields(entry.config)]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"strategy {name!r} has no setting {', '.join(unknown)}; valid: "
                         f"{', '.join(fields)}")
    try:
        return entry.config(**dict(values))
    except TypeError as err:
        raise ValueError(str(err)) from None


def make_strategy(name: str, space: FusionSpace, config: Any, seed: int,
                  init_mean: np.ndarray | None = None) -> BaseStrategy:
    """Strategy ``name`` built from its ``config`` (an instance of its config class)."""
    entry = _entry(name)
    if type(config) is not entry.config:
        raise ValueError(f"strategy {name!r} takes a {entry.config.__name__}, not "
                         f"{type(config).__name__}")
    return entry.build(space, config, int(seed), init_mean)
