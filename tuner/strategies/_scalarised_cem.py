"""CEM over scalarisations: one CEM per direction of the metrics' simplex."""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations_with_replacement

import numpy as np

from tuner.space import FusionSpace
from tuner.strategies._cem import CEM, CEMConfig
from tuner.strategies._multi import BaseMultiStrategy, checked_tell_multi

__all__ = ["SCALARISATIONS", "ScalarisedCEM", "ScalarisedCEMConfig", "simplex_directions"]

SCALARISATIONS = ("linear", "chebyshev")


def simplex_directions(n_metrics: int, count: int) -> np.ndarray:
    """``count`` weight vectors ``[count, K]`` spread over the simplex (rows sum to 1).

    Two metrics: evenly spaced, from the first metric alone to the second alone. More: the
    corners first (each metric alone), then points of a Das-Dennis lattice chosen one by one
    as far as possible from those already chosen (the centre comes right after the corners).

    Example:
        >>> simplex_directions(2, 3).tolist()
        [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]
    """
    if n_metrics < 2 or count < n_metrics:
        raise ValueError(f"need at least {n_metrics} directions (one per metric, K >= 2); "
                         f"got {count}")
    if n_metrics == 2:
        a = np.linspace(1.0, 0.0, count)
        return np.stack([a, 1.0 - a], axis=1)
    h = 6  # a multiple of 2 and 3 puts edge midpoints and the centre on the lattice
    while math.comb(h + n_metrics - 1, n_metrics - 1) < 4 * count:
        h += 6
    lattice = [np.bincount(c, minlength=n_metrics) / h
               for c in combinations_with_replacement(range(n_metrics), h)]
    grid = np.unique(np.array(lattice), axis=0)[::-1]
    chosen = [int(np.flatnonzero(grid[:, k] == 1.0)[0]) for k in range(n_metrics)]
    dist = np.min(np.linalg.norm(grid[:, None, :] - grid[chosen][None], axis=2), axis=1)
    while len(chosen) < count:
        nxt = int(np.argmax(dist))  # the first maximum: deterministic
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(grid - grid[nxt], axis=1))
    return np.asarray(grid[chosen], dtype=np.float64)


@dataclass(frozen=True)
class ScalarisedCEMConfig:
    """Hyperparameters of :class:`ScalarisedCEM`.

    Args:
        cem: hyperparameters of each CEM (``cem.population`` points per scalarisation).
        n_scalarisations: number ``S`` of directions on the simplex, one CEM each.
        scalarisation: ``"linear"``: ``sum_k l_k r_k``; ``"chebyshev"``: ``min_k r_k / l_k``
            over ``l_k > 0`` plus ``0.01 sum_k r_k`` (reaches non-convex parts of the front),
            where ``r_k = (y_k - c_k) / |c_k|`` is metric ``k``'s relative lift over the
            reference ``c`` (control).
    """

    cem: CEMConfig = CEMConfig(population=8)
    n_scalarisations: int = 4
    scalarisation: str = "linear"

    def __post_init__(self) -> None:
        if self.scalarisation not in SCALARISATIONS:
            raise ValueError(f"unknown scalarisation {self.scalarisation!r}; valid: "
                             f"{list(SCALARISATIONS)}")
        if self.n_scalarisations < 1:
            raise ValueError(f"n_scalarisations is {self.n_scalarisations}; need >= 1")

    @property
    def population(self) -> int:
        """Points per generation, all scalarisations together."""
        return self.cem.population * self.n_scalarisations


class ScalarisedCEM(BaseMultiStrategy):
    """``S`` independent CEMs, CEM ``s`` maximising the scalarisation along direction ``s``.

    A generation is the ``S`` CEMs' populations stacked (rows ``s * m .. (s + 1) * m - 1``
    belong to CEM ``s``); each CEM is told only its own rows, scalarised. CEM ``s`` is seeded
    with ``[seed, s]``, so its draws do not depend on the others.

    Args:
        space: the search space.
        reference: ``[K]`` reference values of the (maximised) metrics, e.g. control's;
            lifts are relative to them, which puts metrics of different sizes on one scale.
        config: hyperparameters.
        seed: seed.
        init_mean: every CEM's initial mean (e.g. the control weights); default box centre.

    Example:
        >>> space = FusionSpace(("a", "b", "c"), pinned="a")
        >>> cfg = ScalarisedCEMConfig(CEMConfig(population=4), n_scalarisations=3)
        >>> s = ScalarisedCEM(space, np.array([1.0, 1.0]), cfg, seed=0)
        >>> X = s.ask(0)
        >>> s.tell(0, X, np.stack([X[:, 0], -X[:, 0]], axis=1))
        >>> X.shape
        (12, 2)
    """

    def __init__(self, space: FusionSpace, reference: np.ndarray,
                 config: ScalarisedCEMConfig | None = None, seed: int = 0,
                 init_mean: np.ndarray | None = None) -> None:
        self.space = space
        self.config = config if config is not None else ScalarisedCEMConfig()
        ref = np.asarray(reference, dtype=np.float64).reshape(-1)
        if not np.isfinite(ref).all():
            raise ValueError(f"reference values {ref.tolist()} must be finite")
        self.n_metrics = int(ref.shape[0])
        self.reference = ref
        self.directions = simplex_directions(self.n_metrics, self.config.n_scalarisations)
        self.seed = int(seed)
        seeds = [int(np.random.SeedSequence([self.seed, s]).generate_state(1)[0])
                 for s in range(self.config.n_scalarisations)]
        self.cems = [CEM(space, self.config.cem, sd, init_mean) for sd in seeds]
        self._generation = 0

    def reset(self) -> None:
        for c in self.cems:
            c.reset()
        self._generation = 0

    def ask(self, generation: int) -> np.ndarray:
        """``X [S * m, dim]``: every CEM's population, CEM 0 first."""
        return np.concatenate([c.ask(generation) for c in self.cems])

    def scalarise(self, values: np.ndarray) -> np.ndarray:
        """``[M, S]`` scalarisation of values ``[M, K]`` along every direction (NaN stays)."""
        Y = np.asarray(values, dtype=np.float64)
        scale = np.where(np.abs(self.reference) > 0, np.abs(self.reference), 1.0)
        r = (Y - self.reference) / scale  # [M, K] relative lifts
        L = self.directions  # [S, K]
        if self.config.scalarisation == "linear":
            return np.asarray(r @ L.T)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(L[None] > 0, r[:, None, :] / L[None], np.inf)  # [M, S, K]
        return np.asarray(ratio.min(axis=2) + 0.01 * r.sum(axis=1, keepdims=True))

    def tell(self, generation: int, X: np.ndarray, values: np.ndarray) -> None:
        m = self.config.cem.population
        X, Y = checked_tell_multi("CEM over scalarisations", generation, self._generation,
                                  self.space.dim, self.n_metrics, X, values)
        if X.shape[0] != m * len(self.cems):
            raise ValueError(f"tell got {X.shape[0]} points; need {m} per scalarisation x "
                             f"{len(self.cems)}")
        scores = self.scalarise(Y)
        scores[~np.isfinite(Y).all(axis=1)] = np.nan
        for s, c in enumerate(self.cems):
            c.tell(generation, X[s * m:(s + 1) * m], scores[s * m:(s + 1) * m, s])
        self._generation += 1
