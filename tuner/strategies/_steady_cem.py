"""Steady-state CEM: each round replaces only the worst members of the population."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tuner.strategies._base import checked_tell
from tuner.strategies._gaussian import GaussianStrategy

__all__ = ["SteadyCEM", "SteadyCEMConfig"]


@dataclass(frozen=True)
class SteadyCEMConfig:
    """Hyperparameters of steady-state CEM.

    Args:
        population: members per round ``M`` (online: traffic buckets, each running one
            weight vector).
        replace_fraction: share of the population replaced each round; the worst
            ``ceil(replace_fraction * M)`` members get new vectors from the refitted
            Gaussian, the others survive and are evaluated again. ``1.0`` is plain CEM.
        elite_fraction: share of the population the Gaussian is refitted to.
        smoothing: ``s`` in ``new = s * elite + (1 - s) * old``, for mean and sigma.
        sigma_floor: lower bound of every sigma, as a fraction of ``high - low``.
        init_sigma: sigma of round 0, as a fraction of ``high - low``.
    """

    population: int = 32
    replace_fraction: float = 0.5
    elite_fraction: float = 0.25
    smoothing: float = 0.7
    sigma_floor: float = 0.05
    init_sigma: float = 0.3

    def __post_init__(self) -> None:
        if isinstance(self.population, bool) or not isinstance(self.population, int):
            raise TypeError(
                f"SteadyCEMConfig.population must be an int, got {self.population!r}"
            )
        if self.population < 2:
            raise ValueError(f"SteadyCEMConfig.population is {self.population}; need >= 2")
        for name in ("replace_fraction", "elite_fraction", "smoothing"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 < value <= 1.0):
                raise ValueError(f"SteadyCEMConfig.{name} is {value}; need 0 < {name} <= 1")
        if not 0.0 <= self.sigma_floor < 1.0:
            raise ValueError(
                f"SteadyCEMConfig.sigma_floor is {self.sigma_floor}; need 0 <= floor < 1 "
                "(a fraction of high - low)"
            )
        if not (math.isfinite(self.init_sigma) and self.init_sigma >= self.sigma_floor
                and self.init_sigma > 0):
            raise ValueError(
                f"SteadyCEMConfig.init_sigma is {self.init_sigma}; need a positive number "
                f">= sigma_floor ({self.sigma_floor})"
            )

    @property
    def n_replace(self) -> int:
        """Members replaced per round, ``ceil(replace_fraction * M)``, in ``[1, M]``."""
        return min(self.population, max(1, math.ceil(round(self.replace_fraction
                                                           * self.population, 9))))

    @property
    def n_elite(self) -> int:
        """Members the Gaussian is refitted to, ``ceil(elite_fraction * M)``, at least 1."""
        return max(1, math.ceil(round(self.elite_fraction * self.population, 9)))


class SteadyCEM(GaussianStrategy):
    """CEM that keeps an archive of its best members and resamples only the worst.

    The archive is the population of the last round with, per member, the mean of all its
    evaluations so far and their count (a member that survives several rounds is averaged
    over them, as a traffic bucket that keeps running gathers more traffic). After each
    :meth:`tell` the Gaussian is refitted to the archive's best ``n_elite`` members (by
    mean value; smoothed and floored as in :class:`~tuner.strategies.CEM`), and the next
    :meth:`ask` returns the ``M - n_replace`` best archive members first, then
    ``n_replace`` fresh draws from the refitted Gaussian (``np.random.default_rng([seed,
    generation])``, clipped to the box). Round 0 draws all ``M``. NaN values never
    count: a member with no finite evaluation is among the first replaced.

    :meth:`tell` recognises survivors by their exact coordinates, so replaying a stored
    history rebuilds the same archive.

    Args:
        space: the search space.
        config: hyperparameters.
        seed: seed of every round's sampling.
        init_mean: initial mean, ``[dim]`` or a full weight vector ``[T]`` (as
            :class:`~tuner.strategies.CEM`'s); default the centre of the box.

    Example:
        >>> from tuner.space import FusionSpace
        >>> space = FusionSpace(("a", "b", "c"), pinned="a")
        >>> cem = SteadyCEM(space, SteadyCEMConfig(population=8), seed=0)
        >>> X = cem.ask(0)
        >>> cem.tell(0, X, -((X - 1.0) ** 2).sum(axis=1))
        >>> cem.ask(1).shape
        (8, 2)
    """

    pick_label = "steady CEM mean"
    config_class = SteadyCEMConfig
    config: SteadyCEMConfig

    def reset(self) -> None:
        super().reset()
        self._X = np.empty((0, self.space.dim))  # archive members [A, dim], best first
        self._value = np.empty(0)  # mean of each member's finite evaluations (NaN: none)
        self._count = np.empty(0, dtype=np.int64)  # finite evaluations per member

    @property
    def mean(self) -> np.ndarray:
        """Mean ``[dim]`` of the current Gaussian."""
        return self._mean.copy()

    @property
    def sigma(self) -> np.ndarray:
        """Standard deviations ``[dim]`` of the current Gaussian."""
        return self._sigma.copy()

    def archive(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The survivors of the next round, best first: ``X [S, dim]``, mean values ``[S]``
        and evaluation counts ``[S]``."""
        keep = self._n_survivors()
        return self._X[:keep].copy(), self._value[:keep].copy(), self._count[:keep].copy()

    def ask(self, generation: int) -> np.ndarray:
        """Round ``generation``: the surviving archive members, then fresh draws."""
        survivors = self._X[:self._n_survivors()]
        fresh = self._draw(generation, self.config.population - len(survivors))
        return np.concatenate([survivors, fresh])

    def tell(self, generation: int, X: np.ndarray, values: np.ndarray) -> None:
        X, values = checked_tell("SteadyCEM", generation, self._generation, self.space.dim,
                                 X, values)
        value, count = self._merge(X, values)
        # best first; members without a finite evaluation last; stable for reproducibility
        order = np.argsort(-np.where(count > 0, value, -np.inf), kind="stable")
        self._X, self._value, self._count = X[order].copy(), value[order], count[order]
        self._refit()
        self._generation += 1

    def _merge(self, X: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per row of ``X``: running mean of its finite evaluations and their count."""
        finite = np.isfinite(values)
        value = np.where(finite, values, np.nan)
        count = finite.astype(np.int64)
        survivors = self._X[:self._n_survivors()]
        unmatched = np.ones(len(survivors), dtype=bool)
        for i, x in enumerate(X):
            hits = np.flatnonzero(unmatched & np.all(survivors == x, axis=1))
            if len(hits) == 0:
                continue
            j = hits[0]
            unmatched[j] = False
            old_n = int(self._count[j])  # >= 1: survivors all have a finite evaluation
            new_n = old_n + int(finite[i])
            new_sum = old_n * self._value[j] + (values[i] if finite[i] else 0.0)
            value[i], count[i] = new_sum / new_n, new_n
        return value, count

    def _refit(self) -> None:
        n_elite = min(self.config.n_elite, int((self._count > 0).sum()))
        if n_elite == 0:
            return
        elite = self._X[:n_elite]
        s = self.config.smoothing
        self._mean = s * elite.mean(axis=0) + (1.0 - s) * self._mean
        sigma = s * elite.std(axis=0) + (1.0 - s) * self._sigma
        floor = self.config.sigma_floor * (self.space.high - self.space.low)
        self._sigma = np.maximum(sigma, floor)

    def _n_survivors(self) -> int:
        """Archive members kept into the next round (members never evaluated are not)."""
        if len(self._X) == 0:
            return 0
        keep = self.config.population - self.config.n_replace
        return min(keep, int((self._count > 0).sum()))
