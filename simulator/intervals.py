"""Confidence intervals over requests: bootstrap (vectorized) and normal approximation.

All work on :class:`~simulator.estimators.RequestTerms` and a ``combine``
matrix ``[T, M]`` that maps per-task values to ``M`` reported metrics (the
identity for per-task values; a column of objective weights for a business
objective), so one resample serves every task, the objective and every
policy of a population at once.

A policy's estimate and interval are bit for bit the same whichever other policies
share the call (a population evaluated whole or in workers' chunks): every product
that sums over tasks or requests is computed one policy at a time, in BLAS calls
whose shapes do not depend on the population's size (:func:`_policy_sums`), or by
numpy reductions that add in a fixed order. One matrix product over the whole
population would be no faster here, and its summation order depends on the number
of columns (OpenBLAS blocks and splits them by width), which moved interval ends
by up to 4e-7 relative.
"""

from __future__ import annotations

import abc
import dataclasses
import warnings
from dataclasses import dataclass

import numpy as np

from simulator.estimators._base import RequestTerms

__all__ = [
    "INTERVALS",
    "BaseInterval",
    "BootstrapInterval",
    "NormalInterval",
    "StudentizedBootstrapInterval",
    "influence",
    "make_interval",
    "point_values",
    "rows_times",
]


def rows_times(a: np.ndarray, combine: np.ndarray) -> np.ndarray:
    """``a [P, T] @ combine [T, M]``, each row summed over ``T`` in order by itself (a BLAS
    product of one row takes another path than one of many, and rounds otherwise)."""
    return np.einsum("pt,tm->pm", a, combine)


def point_values(terms: RequestTerms, combine: np.ndarray) -> np.ndarray:
    """``[P, M]`` point estimates."""
    num = rows_times(terms.numerator.sum(axis=1, dtype=np.float64), combine)  # [P, M]
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
    return rows_times(terms.offset.mean(axis=1, dtype=np.float64), combine)


def influence(terms: RequestTerms, combine: np.ndarray) -> np.ndarray:
    """``[P, R, M]`` per-request influence values of the estimates (delta method).

    The influence of request ``r`` on ``V = s * A / D`` is
    ``s * (a_r - (A / D) * d_r) / D`` (``D`` the mean denominator), on a plain mean
    ``a_r`` itself; an additive ``offset`` adds its own per-request value. Their
    standard deviation over ``sqrt(R)`` is the delta-method standard error.
    """
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


def _policy_sums(counts: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    """``[B, P, K]`` resampled sums ``counts [B, R] @ blocks[p] [R, K]``, one policy at a time.

    Every call has the same shapes whatever ``P`` is, so a policy's sums do not depend on
    which policies share ``blocks``; the ``P`` products read ``counts`` ``P`` times, which
    measured no slower than one ``[R, P * K]`` product (``bench/replay.py``).
    """
    b, (p, _, k) = counts.shape[0], blocks.shape
    out = np.empty((b, p, k), dtype=np.float64)
    for i in range(p):
        out[:, i] = counts @ blocks[i]
    return out


def _resampled_sums(counts: np.ndarray, terms: RequestTerms, combine: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Resampled sums over requests: numerator ``[B, P, M]``, denominator ``[B, P]``
    and offset ``[B, P, M]`` (None where the terms have none)."""
    m = combine.shape[1]
    c32 = combine.astype(np.float32)
    parts = [np.einsum("prt,tm->prm", terms.numerator, c32)]  # [P, R, M] each
    if terms.denominator is not None:
        parts.append(terms.denominator.astype(np.float32, copy=False)[..., None])
    if terms.offset is not None:
        parts.append(np.einsum("prt,tm->prm", terms.offset, c32))
    blocks = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=2)
    sums = _policy_sums(counts, blocks)  # [B, P, K]
    num = sums[..., :m]
    den = sums[..., m] if terms.denominator is not None else None
    off = sums[..., -m:] if terms.offset is not None else None
    return num, den, off


def _ratio(terms: RequestTerms, num: np.ndarray, den: np.ndarray | None,
           off: np.ndarray | None) -> np.ndarray:
    """``[B, P, M]`` estimates from resampled sums (see :func:`_resampled_sums`)."""
    r = terms.numerator.shape[1]
    off_mean: np.ndarray | float = 0.0 if off is None else off / r
    if den is None:
        return num / r + off_mean
    assert terms.scale is not None
    with np.errstate(divide="ignore", invalid="ignore"):
        return terms.scale[None, :, None] * num / den[:, :, None] + off_mean


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
    metrics, turns the bootstrap into matrix products
    ``counts @ per_request_terms`` (``B x R x P*M`` flops), one per policy so that a
    policy's interval does not depend on the others (see the module docstring).

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
        return self._draws(self._counts(terms.numerator.shape[1]), terms, combine)

    def _draws(self, counts: np.ndarray, terms: RequestTerms, combine: np.ndarray
               ) -> np.ndarray:
        """``[B, P, M]`` replicate estimates on the resamples ``counts [B, R]``."""
        return _ratio(terms, *_resampled_sums(counts, terms, combine))

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

    def draws(self, terms: RequestTerms, combine: np.ndarray) -> np.ndarray:
        low, high = self.bounds(terms, combine)
        return np.stack([low, high])

    def bounds(
        self, terms: RequestTerms, combine: np.ndarray, contrast: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        value = point_values(terms, combine)  # [P, M]
        infl = influence(terms, combine)  # [P, R, M]
        if contrast is not None:
            value = contrast @ value
            infl = np.einsum("qp,prm->qrm", contrast, infl)
        se = infl.std(axis=1, ddof=1) / np.sqrt(infl.shape[1])
        from scipy import stats  # here: importing scipy.stats costs ~0.5 s at CLI start

        z = stats.norm.ppf(0.5 + self.level / 2.0)
        return value - z * se, value + z * se


@dataclass(frozen=True)
class StudentizedBootstrapInterval(BaseInterval):
    """Bootstrap-t: the bootstrap distribution of ``t = (V* - V) / se*``, not of ``V*``.

    For each resample ``b`` (the same ``[B, R]`` counts as
    :class:`BootstrapInterval` with this seed) it takes the replicate estimate
    ``V*_b`` and its own delta-method standard error ``se*_b``, the resampled
    spread of the per-request influence values of :func:`influence` (fixed at
    the full sample's linearization point, so one more matrix product serves
    every policy and metric). With ``t_q`` the quantiles of
    ``t_b = (V*_b - V) / se*_b`` the interval is

    ``[V - t_{1 - alpha/2} * se, V - t_{alpha/2} * se]``.

    Where the standard error moves with the estimate (a rare, heavily weighted
    label: a sample with few such events has a low estimate *and* a small
    standard error) ``t`` is skewed, and the interval leans the way the
    percentile bootstrap and the normal interval cannot; it is second-order
    accurate where those are first-order (Hall 1988; Davison & Hinkley 1997,
    section 5.2). It cannot see events the sample does not hold: with one or
    two expected events of a large importance weight in the whole log no
    interval built from the log alone covers.

    Args:
        n_resamples: number of bootstrap replicates ``B`` (>= 50).
        level: confidence level in (0, 1).
        seed: seed of the resampling.

    Example:
        >>> StudentizedBootstrapInterval(200, seed=0).level
        0.95
    """

    n_resamples: int = 200
    level: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        # the same checks and resamples as the percentile bootstrap of this seed
        object.__setattr__(self, "_boot", BootstrapInterval(self.n_resamples, self.level,
                                                            self.seed))

    def draws(self, terms: RequestTerms, combine: np.ndarray) -> np.ndarray:
        """``[B, P, M]`` replicate estimates (those of :class:`BootstrapInterval`)."""
        boot: BootstrapInterval = self.__dict__["_boot"]
        return boot.draws(terms, combine)

    def bounds(
        self, terms: RequestTerms, combine: np.ndarray, contrast: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        boot: BootstrapInterval = self.__dict__["_boot"]
        r = terms.numerator.shape[1]
        counts = boot._counts(r)
        num, den, off = _resampled_sums(counts, terms, combine)
        draws = _ratio(terms, num, den, off)  # [B, P, M]
        value = point_values(terms, combine)  # [P, M]
        infl = influence(terms, combine)  # [P, R, M]
        # resampled sum of the influence values, from the sums the draws were made of
        # (the influence is linear in the per-request terms: see influence())
        s1 = num
        if den is not None:
            assert terms.denominator is not None and terms.scale is not None
            a_bar = rows_times(terms.numerator.sum(axis=1, dtype=np.float64), combine) / r
            d_bar = terms.denominator.mean(axis=1, dtype=np.float64)  # [P]
            ratio = a_bar / d_bar[:, None]
            s1 = terms.scale[None, :, None] * (num - ratio[None] * den[..., None]) / d_bar[
                None, :, None]
        if off is not None:
            s1 = s1 + off
        if contrast is not None:
            draws = np.einsum("qp,bpm->bqm", contrast, draws)
            value = contrast @ value
            infl = np.einsum("qp,prm->qrm", contrast, infl)
            s1 = np.einsum("qp,bpm->bqm", contrast, s1)
        q, _, m = infl.shape
        se = infl.std(axis=1, ddof=1) / np.sqrt(r)  # [Q, M]
        mean = infl.mean(axis=1)  # [Q, M]
        # centred: the resampled variance is shift-free, and float32 sums stay exact enough
        centred = infl - mean[:, None, :]  # [Q, R, M]
        s2 = _policy_sums(counts, (centred * centred).astype(np.float32))  # [B, Q, M]
        s1c = s1 - r * mean  # [B, Q, M] resampled sum of the centred values
        se_b = np.sqrt(np.maximum(s2 - s1c * s1c / r, 0.0) / (r * (r - 1.0)))
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(se_b > 0, (draws - value) / se_b, np.nan)
        alpha = (1.0 - self.level) / 2.0
        with warnings.catch_warnings():  # an all-NaN column: no spread in any resample
            warnings.simplefilter("ignore", RuntimeWarning)
            t_low, t_high = np.nanquantile(t, [alpha, 1.0 - alpha], axis=0)
        # a metric with no spread at all (se = 0 in every resample) is a point
        t_low, t_high = np.nan_to_num(t_low), np.nan_to_num(t_high)
        return value - t_high * se, value - t_low * se


INTERVALS: dict[str, type[BaseInterval]] = {
    "bootstrap": BootstrapInterval,
    "studentized": StudentizedBootstrapInterval,
    "normal": NormalInterval,
}
"""Interval methods by the names of config files and the CLI: percentile bootstrap over
requests (the default), studentized bootstrap (bootstrap-t), normal approximation with the
delta method."""


def make_interval(name: str, n_resamples: int = 200, seed: int = 0) -> BaseInterval:
    """The 95% interval method ``name`` (a key of :data:`INTERVALS`).

    ``n_resamples`` and ``seed`` go to the methods that resample; the normal
    approximation has neither.

    Raises:
        ValueError: an unknown name, listing the valid ones.

    Example:
        >>> make_interval("normal")
        NormalInterval(level=0.95)
    """
    if name not in INTERVALS:
        raise ValueError(f"unknown interval {name!r}; valid: {list(INTERVALS)}")
    cls = INTERVALS[name]
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    given = {"n_resamples": n_resamples, "seed": seed}
    return cls(**{k: v for k, v in given.items() if k in fields})
