"""Confidence intervals over requests: bootstrap (vectorized) and normal approximation.

Both work on :class:`~simulator.estimators.RequestTerms` and a ``combine``
matrix ``[T, M]`` that maps per-task values to ``M`` reported metrics (the
identity for per-task values; a column of objective weights for a business
objective), so one resample serves every task, the objective and every
policy of a population at once.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np
from scipy import stats

from simulator.estimators._base import RequestTerms

__all__ = ["BaseInterval", "BootstrapInterval", "NormalInterval", "point_values"]


def point_values(terms: RequestTerms, combine: np.ndarray) -> np.ndarray:
    """``[P, M]`` point estimates."""
    num = terms.numerator.sum(axis=1, dtype=np.float64) @ combine  # [P, M]
    if terms.denominator is None:
        return num / terms.numerator.shape[1] + _offset_mean(terms, combine)
    assert terms.scale is not None
    den = terms.denominator.sum(axis=1, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return terms.scale[:, None] * num / den[:, None] + _offset_mean(terms, combine)


def _offset_mean(terms: RequestTerms, combine: np.ndarray) -> np.ndarray | float:
    """``[P, M]`` mean of the additive ``offset`` term, or 0 without one."""
    if terms.offset is None:
        return 0.0
    return terms.offset.mean(axis=1, dtype=np.float64) @ combine


class BaseInterval(abc.ABC):
    """A way of putting an interval around per-request estimates."""

    level: float

    @abc.abstractmethod
    def draws(self, terms: RequestTerms, combine: np.ndarray) -> np.ndarray:
        """``[B, P, M]`` replicate estimates (bootstrap) or ``[2, P, M]`` bounds."""

    @abc.abstractmethod
    def bounds(
        self, terms: RequestTerms, combine: np.ndarray, contrast: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(low, high)``, each ``[P, M]``, or ``[Q, M]`` for a ``contrast [Q, P]``.

        A contrast row ``c`` asks for the interval of ``sum_p c[p] * V_p``, e.g.
        ``[-1, 1]`` for treatment minus control on the same resampled requests.
        """


@dataclass(frozen=True)
class BootstrapInterval(BaseInterval):
    """Percentile bootstrap over requests.

    One ``[B, R]`` matrix of resample counts, shared by all policies and
    metrics, turns the bootstrap into a single matrix product
    ``counts @ per_request_terms`` (``B x R x P*M`` flops).

    Args:
        n_resamples: number of bootstrap replicates ``B`` (>= 50).
        level: confidence level in (0, 1).
        seed: seed of the resampling.
    """

    n_resamples: int = 200
    level: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_resamples < 50:
            raise ValueError(f"n_resamples must be >= 50, got {self.n_resamples}")
        if not 0.0 < self.level < 1.0:
            raise ValueError(f"level must be in (0, 1), got {self.level}")

    def _counts(self, n: int) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        idx = rng.integers(0, n, size=(self.n_resamples, n))
        flat = (idx + (np.arange(self.n_resamples) * n)[:, None]).reshape(-1)
        counts = np.bincount(flat, minlength=self.n_resamples * n)
        return counts.reshape(self.n_resamples, n).astype(np.float32)

    def draws(self, terms: RequestTerms, combine: np.ndarray) -> np.ndarray:
        p, r, _ = terms.numerator.shape
        m = combine.shape[1]
        counts = self._counts(r)
        per_req = np.einsum("prt,tm->rpm", terms.numerator, combine.astype(np.float32))
        num = (counts @ per_req.reshape(r, p * m)).reshape(-1, p, m).astype(np.float64)
        off: np.ndarray | float = 0.0
        if terms.offset is not None:
            per_off = np.einsum("prt,tm->rpm", terms.offset, combine.astype(np.float32))
            off = (counts @ per_off.reshape(r, p * m)).reshape(-1, p, m).astype(np.float64) / r
        if terms.denominator is None:
            return num / r + off
        assert terms.scale is not None
        den = (counts @ terms.denominator.T).astype(np.float64)  # [B, P]
        with np.errstate(divide="ignore", invalid="ignore"):
            return terms.scale[None, :, None] * num / den[:, :, None] + off

    def bounds(
        self, terms: RequestTerms, combine: np.ndarray, contrast: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        draws = self.draws(terms, combine)  # [B, P, M]
        if contrast is not None:
            draws = np.einsum("qp,bpm->bqm", contrast, draws)
        alpha = (1.0 - self.level) / 2.0
        low, high = np.nanquantile(draws, [alpha, 1.0 - alpha], axis=0)
        return low, high


@dataclass(frozen=True)
class NormalInterval(BaseInterval):
    """Normal approximation with the delta method for self-normalized estimators.

    The influence of request ``r`` on ``V = s * A / D`` is
    ``s * (a_r - (A / D) * d_r) / D``; its standard deviation over ``sqrt(R)``
    is the standard error.
    """

    level: float = 0.95

    def __post_init__(self) -> None:
        if not 0.0 < self.level < 1.0:
            raise ValueError(f"level must be in (0, 1), got {self.level}")

    def _influence(self, terms: RequestTerms, combine: np.ndarray) -> np.ndarray:
        a = np.einsum("prt,tm->prm", terms.numerator.astype(np.float64), combine)
        # an additive plain-mean term's influence is itself
        off = (0.0 if terms.offset is None
               else np.einsum("prt,tm->prm", terms.offset.astype(np.float64), combine))
        if terms.denominator is None:
            return a + off
        assert terms.scale is not None
        d = terms.denominator.astype(np.float64)
        a_bar, d_bar = a.mean(axis=1), d.mean(axis=1)  # [P, M], [P]
        ratio = a_bar / d_bar[:, None]
        return terms.scale[:, None, None] * (a - ratio[:, None, :] * d[..., None]) / d_bar[
            :, None, None] + off

    def draws(self, terms: RequestTerms, combine: np.ndarray) -> np.ndarray:
        low, high = self.bounds(terms, combine)
        return np.stack([low, high])

    def bounds(
        self, terms: RequestTerms, combine: np.ndarray, contrast: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        value = point_values(terms, combine)  # [P, M]
        infl = self._influence(terms, combine)  # [P, R, M]
        if contrast is not None:
            value = contrast @ value
            infl = np.einsum("qp,prm->qrm", contrast, infl)
        se = infl.std(axis=1, ddof=1) / np.sqrt(infl.shape[1])
        z = stats.norm.ppf(0.5 + self.level / 2.0)
        return value - z * se, value + z * se
