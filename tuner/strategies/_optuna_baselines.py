"""Optuna's samplers (TPE, CMA-ES, random, NSGA-II) behind the ask/tell strategy interface."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import (
    BaseSampler,
    CmaEsSampler,
    NSGAIISampler,
    RandomSampler,
    TPESampler,
)
from optuna.trial import Trial, TrialState, create_trial

from tuner.space import FusionSpace
from tuner.strategies._base import BaseStrategy, checked_tell

__all__ = [
    "OptunaStrategy",
    "SamplerFactory",
    "cmaes",
    "nsga2",
    "random_search",
    "require_cmaes",
    "tpe",
]

SamplerFactory = Callable[[int], BaseSampler]
"""``seed -> sampler``: called on construction and on every :meth:`OptunaStrategy.reset`."""


class OptunaStrategy(BaseStrategy):
    """An Optuna sampler driven generation by generation through ``study.ask``/``study.tell``.

    The strategy owns an in-memory, maximising study. :meth:`ask` asks the study for
    ``population`` trials at once (samplers see the others as RUNNING, e.g. TPE's constant
    liar) and returns their parameters; :meth:`tell` completes them (NaN -> FAIL). Asking
    the same generation again returns the same trials. Told points other than the asked
    ones (e.g. a stored history in :meth:`replay`) are added to the study as finished
    trials, and the asked ones are marked FAIL.

    The sampler's own generator drives the search, so the asks are reproducible for one
    seed and one sequence of asks and tells, but (unlike CEM's) they are not a function of
    the generation number alone: :meth:`replay` asks each stored generation again before
    telling it, which puts the sampler where an uninterrupted run left it.

    Args:
        space: the search space; its parameter names and bounds become the trials'.
        sampler_factory: ``seed -> sampler``, e.g. ``lambda s: TPESampler(seed=s)``.
        population: trials per generation ``M``.
        seed: passed to ``sampler_factory``.

    Example:
        >>> space = FusionSpace(("a", "b", "c"), pinned="a")
        >>> strategy = OptunaStrategy(space, lambda s: RandomSampler(seed=s), 8, seed=0)
        >>> X = strategy.ask(0)
        >>> strategy.tell(0, X, -((X - 1.0) ** 2).sum(axis=1))
        >>> strategy.pick().shape
        (2,)
    """

    def __init__(self, space: FusionSpace, sampler_factory: SamplerFactory,
                 population: int = 32, seed: int = 0) -> None:
        if isinstance(population, bool) or not isinstance(population, int) or population < 1:
            raise ValueError(f"population is {population!r}; need an int >= 1")
        self.space = space
        self.sampler_factory = sampler_factory
        self._population = population
        self.seed = int(seed)
        self.config: Any = None  # the registry's sampler config, when built from STRATEGIES
        self.reset()

    pick_label = "best trial"

    @property
    def population(self) -> int:
        return self._population

    @property
    def study(self) -> optuna.Study:
        """The in-memory study holding every trial so far."""
        return self._study

    @property
    def generation(self) -> int:
        """Number of generations told so far."""
        return self._generation

    def reset(self) -> None:
        self._study = optuna.create_study(direction="maximize",
                                          sampler=self.sampler_factory(self.seed))
        self._generation = 0
        self._pending: tuple[list[Trial], np.ndarray] | None = None

    def ask(self, generation: int) -> np.ndarray:
        """``X [M, dim]``: the next generation's trials (asked once, then repeated)."""
        if generation != self._generation:
            raise ValueError(
                f"asked generation {generation} but the study is at generation "
                f"{self._generation} (an Optuna study can only ask the next generation)"
            )
        if self._pending is None:
            distributions: dict[str, BaseDistribution] = dict(self.space.distributions())
            trials = [self._study.ask(distributions) for _ in range(self.population)]
            X = np.stack([self.space.from_params(t.params) for t in trials])
            self._pending = (trials, self.space.clip(X))
        return self._pending[1].copy()

    def tell(self, generation: int, X: np.ndarray, values: np.ndarray) -> None:
        X, values = checked_tell("the study", generation, self._generation, self.space.dim,
                                 X, values)
        pending, self._pending = self._pending, None
        if pending is not None and np.array_equal(pending[1], X):
            for trial, value in zip(pending[0], values.tolist(), strict=True):
                if np.isfinite(value):
                    self._study.tell(trial, value)
                else:
                    self._study.tell(trial, state=TrialState.FAIL)
        else:
            for trial in pending[0] if pending is not None else []:
                self._study.tell(trial, state=TrialState.FAIL)
            dists: dict[str, BaseDistribution] = dict(self.space.distributions())
            for x, value in zip(self.space.clip(X), values.tolist(), strict=True):
                finite = bool(np.isfinite(value))
                self._study.add_trial(create_trial(
                    state=TrialState.COMPLETE if finite else TrialState.FAIL,
                    value=value if finite else None,
                    params=self.space.to_params(x),
                    distributions=dists,
                ))
        self._generation += 1

    def pick(self) -> np.ndarray:
        """The recommended vector ``[dim]``: the best observed trial (the centre of the box
        before any trial completed)."""
        complete = self._study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not complete:
            return np.full(self.space.dim, (self.space.low + self.space.high) / 2.0)
        return self.space.clip(self.space.from_params(self._study.best_trial.params))


def require_cmaes() -> None:
    """Raise ImportError (saying what to install) unless the ``cmaes`` package is there."""
    if importlib.util.find_spec("cmaes") is None:
        raise ImportError("Optuna's CmaEsSampler needs the 'cmaes' package: "
                          "pip install 'fusiontune[bench]' (or pip install cmaes)")


def tpe(space: FusionSpace, population: int = 32, seed: int = 0) -> OptunaStrategy:
    """Optuna's default TPE (constant liar for the batch's pending trials)."""
    return OptunaStrategy(space, lambda s: TPESampler(seed=s), population, seed)


def cmaes(space: FusionSpace, population: int = 32, seed: int = 0) -> OptunaStrategy:
    """Optuna's CMA-ES with ``popsize = population``; needs the ``cmaes`` package
    (``pip install fusiontune[bench]``)."""
    require_cmaes()
    return OptunaStrategy(space, lambda s: CmaEsSampler(seed=s, popsize=population),
                          population, seed)


def random_search(space: FusionSpace, population: int = 32, seed: int = 0) -> OptunaStrategy:
    """Uniform random search in the box."""
    return OptunaStrategy(space, lambda s: RandomSampler(seed=s), population, seed)


def nsga2(space: FusionSpace, population: int = 32, seed: int = 0) -> OptunaStrategy:
    """Optuna's NSGA-II (single objective: a genetic algorithm) with
    ``population_size = population``."""
    return OptunaStrategy(space, lambda s: NSGAIISampler(seed=s, population_size=population),
                          population, seed)
