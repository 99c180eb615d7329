"""Cross-entropy method (CEM) with a diagonal Gaussian, as an ask/tell strategy."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from tuner.space import FusionSpace
from tuner.strategies._base import BaseStrategy, checked_tell, initial_mean

__all__ = ["CEM", "CEMConfig", "CEMState"]


@dataclass(frozen=True)
class CEMConfig:
    """Hyperparameters of CEM.

    Args:
        population: points per generation ``M``.
        elite_fraction: share of the population refitted to; ``ceil(elite_fraction * M)``
            points are elite.
        smoothing: ``s`` in ``new = s * elite + (1 - s) * old``, for mean and sigma.
        sigma_floor: lower bound of every sigma, as a fraction of ``high - low``.
        init_sigma: sigma of generation 0, as a fraction of ``high - low``.
    """

    population: int = 32
    elite_fraction: float = 0.25
    smoothing: float = 0.7
    sigma_floor: float = 0.05
    init_sigma: float = 0.3

    def __post_init__(self) -> None:
        if isinstance(self.population, bool) or not isinstance(self.population, int):
            raise TypeError(f"CEMConfig.population must be an int, got {self.population!r}")
        if self.population < 2:
            raise ValueError(f"CEMConfig.population is {self.population}; need at least 2")
        if not 0.0 < self.elite_fraction <= 1.0:
            raise ValueError(
                f"CEMConfig.elite_fraction is {self.elite_fraction}; need 0 < fraction <= 1"
            )
        if not 0.0 < self.smoothing <= 1.0:
            raise ValueError(f"CEMConfig.smoothing is {self.smoothing}; need 0 < smoothing <= 1")
        if not 0.0 <= self.sigma_floor < 1.0:
            raise ValueError(
                f"CEMConfig.sigma_floor is {self.sigma_floor}; need 0 <= floor < 1 "
                "(a fraction of high - low)"
            )
        if not (math.isfinite(self.init_sigma) and self.init_sigma > 0):
            raise ValueError(f"CEMConfig.init_sigma is {self.init_sigma}; need a positive number")
        if not self.sigma_floor <= self.init_sigma:
            raise ValueError(
                f"CEMConfig.init_sigma is {self.init_sigma}; need sigma_floor "
                f"({self.sigma_floor}) <= init_sigma"
            )

    @property
    def n_elite(self) -> int:
        """Number of elite points per full generation."""
        return self.elite_count(self.population)

    def elite_count(self, m: int) -> int:
        """``ceil(elite_fraction * m)``, at least 1 (guarded against float round-up)."""
        return max(1, math.ceil(round(self.elite_fraction * m, 9)))


@dataclass(frozen=True)
class CEMState:
    """CEM's search distribution before generation ``generation``.

    Args:
        generation: number of generations told so far.
        mean: Gaussian mean ``[dim]``.
        sigma: Gaussian standard deviations ``[dim]``.
    """

    generation: int
    mean: tuple[float, ...]
    sigma: tuple[float, ...]


class CEM(BaseStrategy):
    """CEM over a :class:`FusionSpace`, maximising.

    Generation ``g`` samples ``M`` points from ``N(mean, diag(sigma^2))`` with
    ``np.random.default_rng([seed, g])`` and clips them to the box, so a generation's
    population depends only on (seed, g, state). :meth:`tell` keeps the best
    ``ceil(elite_fraction * M)`` points (NaN values are never elite) and refits
    ``mean <- s * elite_mean + (1 - s) * mean``, likewise sigma, floored at
    ``sigma_floor * (high - low)``.

    Args:
        space: the search space.
        config: hyperparameters.
        seed: seed of every generation's sampling.
        init_mean: initial mean, ``[dim]`` or a full weight vector ``[T]`` (rescaled so the
            pinned weight is 1), e.g. the control weights; default the centre of the box.

    Example:
        >>> space = FusionSpace(("a", "b", "c"), pinned="a")
        >>> cem = CEM(space, CEMConfig(population=8), seed=0)
        >>> X = cem.ask(0)
        >>> cem.tell(0, X, -((X - 1.0) ** 2).sum(axis=1))
        >>> cem.state.generation
        1
    """

    def __init__(
        self,
        space: FusionSpace,
        config: CEMConfig | None = None,
        seed: int = 0,
        init_mean: np.ndarray | None = None,
    ) -> None:
        self.space = space
        self.config = config if config is not None else CEMConfig()
        self.seed = int(seed)
        self._init_mean = initial_mean(space, init_mean)
        self.reset()

    @property
    def init_mean(self) -> np.ndarray:
        """The initial mean ``[dim]``."""
        return self._init_mean.copy()

    @property
    def state(self) -> CEMState:
        """The current search distribution."""
        return self._state

    @state.setter
    def state(self, state: CEMState) -> None:
        if len(state.mean) != self.space.dim or len(state.sigma) != self.space.dim:
            raise ValueError(f"state has wrong dimension; the space has dim {self.space.dim}")
        self._state = state

    pick_label = "CEM mean"

    @property
    def population(self) -> int:
        return self.config.population

    def pick(self) -> np.ndarray:
        """The recommended vector ``[dim]``: the current mean (the denoised pick)."""
        return np.asarray(self._state.mean, dtype=np.float64)

    def spread(self) -> np.ndarray:
        """The current sigma ``[dim]``."""
        return np.asarray(self._state.sigma, dtype=np.float64)

    def reset(self) -> None:
        width = self.space.high - self.space.low
        sigma = np.full(self.space.dim, self.config.init_sigma * width)
        self._state = CEMState(0, _tup(self._init_mean), _tup(sigma))

    def ask(self, generation: int) -> np.ndarray:
        """Population of generation ``generation`` from the current state: ``X [M, dim]``."""
        return self.sample(self._state, generation)

    def sample(self, state: CEMState, generation: int) -> np.ndarray:
        """Population ``X [M, dim]`` that ``state`` draws for ``generation``."""
        if generation < 0:
            raise ValueError(f"generation is {generation}; need >= 0")
        rng = np.random.default_rng([self.seed, int(generation)])
        z = rng.standard_normal((self.config.population, self.space.dim))
        return self.space.clip(np.asarray(state.mean) + np.asarray(state.sigma) * z)

    def tell(self, generation: int, X: np.ndarray, values: np.ndarray) -> None:
        X, values = checked_tell("CEM", generation, self._state.generation, self.space.dim,
                                 X, values)
        self._state = self._refit(X, values)

    def replay(self, history: Iterable[tuple[np.ndarray, np.ndarray]]) -> None:
        """Rebuild the state from completed generations ``(X [M, dim], values [M])``.

        This is how a search resumes: the stored trials of each finished generation are
        told again in order; no strategy state is ever persisted.
        """
        super().replay(history)

    def _refit(self, X: np.ndarray, values: np.ndarray) -> CEMState:
        old_mean = np.asarray(self._state.mean)
        old_sigma = np.asarray(self._state.sigma)
        finite = np.isfinite(values)
        n_elite = min(self.config.elite_count(len(values)), int(finite.sum()))
        if n_elite == 0:  # nothing usable: keep the distribution, move on a generation
            return CEMState(self._state.generation + 1, _tup(old_mean), _tup(old_sigma))
        keyed = np.where(finite, values, -np.inf)
        # stable sort on -value: ties keep member order, so the result is reproducible
        elite = X[np.argsort(-keyed, kind="stable")[:n_elite]]
        s = self.config.smoothing
        mean = s * elite.mean(axis=0) + (1.0 - s) * old_mean
        sigma = s * elite.std(axis=0) + (1.0 - s) * old_sigma
        floor = self.config.sigma_floor * (self.space.high - self.space.low)
        sigma = np.maximum(sigma, floor)
        return CEMState(self._state.generation + 1, _tup(mean), _tup(sigma))


def _tup(x: np.ndarray) -> tuple[float, ...]:
    return tuple(float(v) for v in x)
