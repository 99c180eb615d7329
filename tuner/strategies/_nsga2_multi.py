"""Optuna's NSGA-II on ``K`` metrics behind the multi-objective ask/tell interface."""

from __future__ import annotations

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import NSGAIISampler
from optuna.trial import Trial, TrialState

from tuner.space import FusionSpace
from tuner.strategies._multi import BaseMultiStrategy, checked_tell_multi

__all__ = ["NSGA2Multi"]


class NSGA2Multi(BaseMultiStrategy):
    """NSGA-II (:class:`optuna.samplers.NSGAIISampler`) over a :class:`FusionSpace`.

    The strategy owns an in-memory study with ``K`` maximised objectives and
    ``population_size = population``. :meth:`ask` asks it for one NSGA-II generation at
    once; :meth:`tell` completes those trials (a row with a NaN -> FAIL, which NSGA-II leaves
    out of selection). The sampler draws on ask, so the asks are reproducible for one seed
    and one sequence of asks and tells, which is what :meth:`replay` repeats on resume.

    Args:
        space: the search space.
        n_metrics: number of metrics ``K``.
        population: trials per generation ``M``.
        seed: the sampler's seed.

    Example:
        >>> space = FusionSpace(("a", "b", "c"), pinned="a")
        >>> nsga = NSGA2Multi(space, n_metrics=2, population=8, seed=0)
        >>> X = nsga.ask(0)
        >>> nsga.tell(0, X, np.stack([X[:, 0], -X[:, 0]], axis=1))
        >>> nsga.ask(1).shape
        (8, 2)
    """

    def __init__(self, space: FusionSpace, n_metrics: int, population: int = 32,
                 seed: int = 0) -> None:
        if isinstance(population, bool) or not isinstance(population, int) or population < 2:
            raise ValueError(f"population is {population!r}; need an int >= 2")
        if n_metrics < 2:
            raise ValueError(f"n_metrics is {n_metrics}; a Pareto front needs at least 2")
        self.space = space
        self.n_metrics = n_metrics
        self.population = population
        self.seed = int(seed)
        self.reset()

    def reset(self) -> None:
        sampler = NSGAIISampler(population_size=self.population, seed=self.seed)
        self._study = optuna.create_study(directions=["maximize"] * self.n_metrics,
                                          sampler=sampler)
        self._generation = 0
        self._pending: tuple[list[Trial], np.ndarray] | None = None

    def ask(self, generation: int) -> np.ndarray:
        """``X [M, dim]``: the next generation's trials (asked once, then repeated)."""
        if generation != self._generation:
            raise ValueError(f"asked generation {generation} but NSGA-II is at generation "
                             f"{self._generation} (it can only ask the next generation)")
        if self._pending is None:
            dists: dict[str, BaseDistribution] = dict(self.space.distributions())
            trials = [self._study.ask(dists) for _ in range(self.population)]
            X = np.stack([self.space.from_params(t.params) for t in trials])
            self._pending = (trials, self.space.clip(X))
        return self._pending[1].copy()

    def tell(self, generation: int, X: np.ndarray, values: np.ndarray) -> None:
        X, Y = checked_tell_multi("NSGA-II", generation, self._generation, self.space.dim,
                                  self.n_metrics, X, values)
        if self._pending is None or not np.array_equal(self._pending[1], X):
            raise ValueError("NSGA-II can only be told the points it asked for, in order "
                             f"(generation {generation})")
        for trial, y in zip(self._pending[0], Y, strict=True):
            if np.isfinite(y).all():
                self._study.tell(trial, y.tolist())
            else:
                self._study.tell(trial, state=TrialState.FAIL)
        self._pending = None
        self._generation += 1
