"""CEM that does not fit the noise of its search split: elites by a smoothed surface, and
a spread that stops shrinking while the search split cannot tell its elites apart."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tuner.strategies._base import checked_tell
from tuner.strategies._gaussian import GaussianStrategy

__all__ = ["SmoothCEM", "SmoothCEMConfig"]


@dataclass(frozen=True)
class SmoothCEMConfig:
    """Hyperparameters of :class:`SmoothCEM`.

    Args:
        population: points per generation ``M``.
        elite_fraction: share of the population refitted to.
        smoothing: ``s`` in ``new = s * elite + (1 - s) * old``, for mean and sigma.
        sigma_floor: lower bound of every sigma, as a fraction of ``high - low``.
        init_sigma: sigma of generation 0, as a fraction of ``high - low``.
        bandwidth: kernel width of the smoothed surface, in units of the current sigma.
        z: standard errors of the smoothed gain of the elite centre over the current mean
            at which half of CEM's step (of the mean, and of sigma's shrinking) is taken.
        ridge: ridge penalty of the local linear fit, relative to the kernel weights' sum.
    """

    population: int = 32
    elite_fraction: float = 0.25
    smoothing: float = 0.7
    sigma_floor: float = 0.05
    init_sigma: float = 0.3
    bandwidth: float = 1.5
    z: float = 2.0
    ridge: float = 1e-3

    def __post_init__(self) -> None:
        if isinstance(self.population, bool) or not isinstance(self.population, int):
            raise TypeError(
                f"SmoothCEMConfig.population must be an int, got {self.population!r}")
        if self.population < 2:
            raise ValueError(f"SmoothCEMConfig.population is {self.population}; need >= 2")
        for name in ("elite_fraction", "smoothing"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 < value <= 1.0):
                raise ValueError(f"SmoothCEMConfig.{name} is {value}; need 0 < {name} <= 1")
        if not 0.0 <= self.sigma_floor < 1.0:
            raise ValueError(f"SmoothCEMConfig.sigma_floor is {self.sigma_floor}; need 0 <= "
                             "floor < 1 (a fraction of high - low)")
        if not (math.isfinite(self.init_sigma) and self.init_sigma > 0
                and self.init_sigma >= self.sigma_floor):
            raise ValueError(f"SmoothCEMConfig.init_sigma is {self.init_sigma}; need a "
                             f"positive number >= sigma_floor ({self.sigma_floor})")
        for name in ("bandwidth", "z", "ridge"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"SmoothCEMConfig.{name} is {value}; need a positive number")

    @property
    def n_elite(self) -> int:
        """Elite points per generation, ``ceil(elite_fraction * M)``, at least 1."""
        return max(1, math.ceil(round(self.elite_fraction * self.population, 9)))


class SmoothCEM(GaussianStrategy):
    """CEM whose elites are ranked by a smoothed surface, with a noise-aware spread.

    A replay estimate on a fixed search split is the truth plus a noise surface that is
    the same at every evaluation; plain CEM ranks on it, shrinks onto its bumps and,
    with more budget, fits them ever closer. Here each :meth:`tell`:

    1. fits a kernel-weighted local linear surface to every finite trial told so far
       (Gaussian kernel around the current mean, width ``bandwidth * sigma`` per
       coordinate), so a member's smoothed value averages the estimates of its
       neighbours, whose noise is partly independent;
    2. ranks the generation's members by their smoothed value and takes the best
       ``n_elite`` as elites (refit as in :class:`~tuner.strategies.CEM`);
    3. weighs the move by the evidence for it: with ``t`` the fitted gain of the elite
       centre over the current mean in standard errors of the fit, the mean moves
       ``a = t^2 / (t^2 + z^2)`` of CEM's step (half of it at ``t = z``, none for a
       gain that is not positive), and sigma shrinks only by that share: while the
       elites are indistinguishable on this split the mean stays and the spread keeps
       its width, so neither is fitted to the split's noise.

    Everything is a deterministic function of what it was told, so :meth:`replay`
    rebuilds it. Generation ``g`` samples as CEM does (``np.random.default_rng([seed,
    g])``, clipped to the box).

    Args:
        space: the search space.
        config: hyperparameters.
        seed: seed of every generation's sampling.
        init_mean: initial mean, ``[dim]`` or full weights ``[T]``; default the box centre.

    Example:
        >>> from tuner.space import FusionSpace
        >>> space = FusionSpace(("a", "b", "c"), pinned="a")
        >>> cem = SmoothCEM(space, SmoothCEMConfig(population=8), seed=0)
        >>> X = cem.ask(0)
        >>> cem.tell(0, X, -((X - 1.0) ** 2).sum(axis=1))
        >>> cem.ask(1).shape
        (8, 2)
    """

    pick_label = "smoothed CEM mean"
    config_class = SmoothCEMConfig
    config: SmoothCEMConfig

    @property
    def distinguishable(self) -> bool:
        """Whether the last :meth:`tell` found its elites better than the mean by more
        than ``z`` standard errors (so more than half of CEM's step was taken)."""
        return self._distinguishable

    def reset(self) -> None:
        super().reset()
        self._X = np.empty((0, self.space.dim))  # every finite trial told [n, dim]
        self._y = np.empty(0)
        self._distinguishable = False

    def ask(self, generation: int) -> np.ndarray:
        """Population ``X [M, dim]`` of generation ``generation`` from the current state."""
        return self._draw(generation, self.config.population)

    def tell(self, generation: int, X: np.ndarray, values: np.ndarray) -> None:
        X, values = checked_tell("SmoothCEM", generation, self._generation, self.space.dim,
                                 X, values)
        finite = np.isfinite(values)
        self._X = np.concatenate([self._X, X[finite]])
        self._y = np.concatenate([self._y, values[finite]])
        self._generation += 1
        members = X[finite]
        if len(members) == 0:
            return
        fit = _local_linear(self._X, self._y, self._mean, self.config.bandwidth * self._sigma,
                            self.config.ridge)
        smoothed = members @ fit.slope if fit is not None else values[finite]
        n_elite = min(self.config.n_elite, len(members))
        elite = members[np.argsort(-smoothed, kind="stable")[:n_elite]]
        s = self.config.smoothing
        centre = elite.mean(axis=0)
        t = fit.gain_z(centre - self._mean) if fit is not None else math.inf
        self._distinguishable = t > self.config.z
        # shrinkage of the step by the evidence for it: t^2 / (t^2 + z^2), 1/2 at t = z
        a = 1.0 if math.isinf(t) else max(t, 0.0) ** 2 / (max(t, 0.0) ** 2 + self.config.z ** 2)
        mean = self._mean + s * a * (centre - self._mean)
        refit = s * elite.std(axis=0) + (1.0 - s) * self._sigma
        sigma = a * refit + (1.0 - a) * np.maximum(refit, self._sigma)
        floor = self.config.sigma_floor * (self.space.high - self.space.low)
        self._mean = self.space.clip(mean[None])[0]
        self._sigma = np.maximum(sigma, floor)


@dataclass(frozen=True)
class _LinearFit:
    """``value ~ a + slope . (x - centre)`` with the covariance of ``slope``."""

    slope: np.ndarray  # [dim]
    slope_cov: np.ndarray  # [dim, dim]

    def gain_z(self, step: np.ndarray) -> float:
        """The fitted gain of moving by ``step [dim]``, in standard errors."""
        var = float(step @ self.slope_cov @ step)
        gain = float(step @ self.slope)
        return gain / math.sqrt(var) if var > 0 else (math.inf if gain > 0 else 0.0)


def _local_linear(X: np.ndarray, y: np.ndarray, centre: np.ndarray, width: np.ndarray,
                  ridge: float) -> _LinearFit | None:
    """Kernel-weighted least squares of ``y [n]`` on ``X [n, dim]`` around ``centre``.

    Weights ``exp(-|(x - centre) / width|^2 / 2)``; the slope's covariance is the
    sandwich of the weighted residuals (noise of unknown, unequal size). None when the
    points are too few or too concentrated to fit.
    """
    d = X.shape[1]
    if len(y) < d + 2:
        return None
    u = (X - centre) / np.maximum(width, 1e-12)
    k = np.exp(-0.5 * (u * u).sum(axis=1))
    if k.sum() <= 0 or (k > 1e-3).sum() < d + 2:
        return None
    A = np.hstack([np.ones((len(y), 1)), X - centre])  # [n, 1 + dim]
    Ak = A * k[:, None]
    gram = A.T @ Ak
    gram[1:, 1:] += ridge * k.sum() * np.diag(1.0 / np.maximum(width, 1e-12) ** 2)
    try:
        inv = np.linalg.inv(gram)
    except np.linalg.LinAlgError:
        return None
    beta = inv @ (Ak.T @ y)
    resid = y - A @ beta
    meat = (Ak * (k * resid**2)[:, None]).T @ A  # sum_i k_i^2 r_i^2 a_i a_i'
    cov = inv @ meat @ inv
    n_eff = k.sum() ** 2 / (k * k).sum()
    cov *= n_eff / max(n_eff - (d + 1), 1.0)  # small-sample inflation of the sandwich
    return _LinearFit(beta[1:], cov[1:, 1:])
