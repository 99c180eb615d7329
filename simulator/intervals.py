"""Confidence intervals over requests: bootstrap (vectorized) and normal approximation.

Every interval is computed from additive sufficient statistics of the per-request terms
(:class:`TermSums`: sums, sums of squares and cross products, and their Poisson-bootstrap
resampled sums), so a log read in chunks, files or on several workers gives the interval
a log held whole gives, to floating-point summation error: the chunks' sums are added
(:meth:`TermSums.__add__`) and :meth:`BaseInterval.bounds_from` finishes.

The bootstrap is a Poisson(1) bootstrap: request ``r`` enters resample ``b`` with a
weight drawn from a counter-based generator keyed by ``(seed, request id, b)``
(:func:`simulator.hashing.poisson_weights`), not a multinomial over row positions, so
which requests a resample holds does not depend on how the log is cut either.

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
import functools
import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from simulator._blas import one_blas_thread
from simulator.estimators._base import RequestTerms
from simulator.hashing import poisson_weights

__all__ = [
    "INTERVALS",
    "TermSums",
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


BLOCK_REQUESTS = 1024
"""Requests per block when sums are taken (``[B, block]`` float64 weights at a time, 1.6 MB
at B = 200: they stay in cache across the per-policy products)."""


@dataclass(frozen=True)
class TermSums:
    """Additive sufficient statistics of ``P`` policies' per-request terms on ``M`` metrics.

    With ``a = numerator @ combine``, ``d = denominator`` and ``o = offset @ combine`` per
    request (each ``[P, M]``, ``d`` broadcast), the columns are the first-order values
    ``a, d, o`` and their products ``aa, ad, dd, ao, do, oo`` (those the terms have).

    Args:
        names: the column names, in the order of the last axis.
        m: number of metrics ``M`` (``d`` and ``dd`` are one column, the others ``M``).
        n: number of requests.
        first: ``[P, K]`` float64 sums of the columns over requests.
        boot: ``[B, P, K']`` Poisson-bootstrap resampled sums of the first ``K'``
            columns (the first-order ones, or all for the studentized bootstrap), or None.
        boot_n: ``[B]`` resampled number of requests (sum of the weights), or None.
        scale_n: ``[P]`` sum over chunks of ``scale * requests`` (self-normalized), or None.

    Example:
        >>> t = RequestTerms(np.ones((1, 4, 1), np.float32), None, None, np.ones(1),
        ...                  np.ones(1))
        >>> s = BootstrapInterval(50).sums(t, np.eye(1))
        >>> (s + s).n, float((s + s).first[0, 0])
        (8, 8.0)
    """

    names: tuple[str, ...]
    m: int
    n: int
    first: np.ndarray
    boot: np.ndarray | None
    boot_n: np.ndarray | None
    scale_n: np.ndarray | None

    def __add__(self, other: TermSums) -> TermSums:
        if other.names != self.names or other.first.shape != self.first.shape:
            raise ValueError(f"sums of different terms cannot be added: {self.names} "
                             f"{self.first.shape} vs {other.names} {other.first.shape}")

        def add(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
            return None if a is None or b is None else a + b

        return TermSums(self.names, self.m, self.n + other.n, self.first + other.first,
                        add(self.boot, other.boot), add(self.boot_n, other.boot_n),
                        add(self.scale_n, other.scale_n))

    @property
    def ratio(self) -> bool:
        """Self-normalized terms (with a denominator)."""
        return "d" in self.names

    def column(self, table: np.ndarray, name: str) -> np.ndarray | float:
        """Column ``name`` of ``first`` ``[P, K]`` or ``boot`` ``[B, P, K]`` (``[..., M]``,
        ``d`` and ``dd`` broadcast to it); 0.0 for a column the terms lack."""
        if name not in self.names:
            return 0.0
        at = self._offsets()[name]
        width = 1 if name in ("d", "dd") else self.m
        return table[..., at:at + width]

    def _offsets(self) -> dict[str, int]:
        out, at = {}, 0
        for name in self.names:
            out[name] = at
            at += 1 if name in ("d", "dd") else self.m
        return out

    @property
    def scale(self) -> np.ndarray | float:
        """``[P, 1]`` the joined scale of a self-normalized estimate, else 1."""
        return 1.0 if self.scale_n is None else (self.scale_n / self.n)[:, None]

    def values(self) -> np.ndarray:
        """``[P, M]`` point estimates."""
        get = functools.partial(self.column, self.first)
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.ratio:
                return np.asarray(self.scale * get("a") / get("d") + get("o") / self.n)
            return np.asarray((get("a") + get("o")) / self.n)

    def linearisation(self) -> tuple[np.ndarray | float, np.ndarray | float]:
        """``(c, rho)``, each ``[P, M]`` (or 1.0 and 0.0 for a plain mean): the influence
        of request ``r`` is ``c (a_r - rho d_r) + o_r`` (see :func:`influence`)."""
        if not self.ratio:
            return 1.0, 0.0
        get = functools.partial(self.column, self.first)
        d = get("d")
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.scale * self.n / d, get("a") / d

    def influence_sums(self, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sums of the influence values and of their squares, ``[..., P, M]`` each, from
        ``first`` or a studentized ``boot`` (the linearisation of the whole sample)."""
        c, rho = self.linearisation()
        get = functools.partial(self.column, table)
        s1 = c * (get("a") - rho * get("d")) + get("o")
        s2 = (c * c * (get("aa") - 2 * rho * get("ad") + rho * rho * get("dd"))
              + 2 * c * (get("ao") - rho * get("do")) + get("oo"))
        return np.asarray(s1, dtype=np.float64), np.asarray(s2, dtype=np.float64)

    def standard_errors(self) -> np.ndarray:
        """``[P, M]`` delta-method standard errors (influence sd over ``sqrt(n)``)."""
        s1, s2 = self.influence_sums(self.first)
        n = float(self.n)
        var = np.maximum(s2 - s1 * s1 / n, 0.0) / (n - 1.0)
        return np.sqrt(var / n)

    def draws(self) -> np.ndarray:
        """``[B, P, M]`` bootstrap replicate estimates."""
        if self.boot is None or self.boot_n is None:
            raise ValueError("these sums hold no bootstrap resamples")
        get = functools.partial(self.column, self.boot)
        nb = self.boot_n[:, None, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.ratio:
                return np.asarray(np.asarray(self.scale)[None] * get("a") / get("d")
                                  + get("o") / nb)
            return np.asarray((get("a") + get("o")) / nb)


_FIRST = ("a", "d", "o")
_SECOND = (("aa", "a", "a"), ("ad", "a", "d"), ("dd", "d", "d"),
           ("ao", "a", "o"), ("do", "d", "o"), ("oo", "o", "o"))


def term_sums(terms: RequestTerms, combine: np.ndarray, keys: np.ndarray | None,
              n_resamples: int, seed: int, boot_columns: str) -> TermSums:
    """The :class:`TermSums` of ``terms`` (``R`` requests keyed by ``keys [R]``).

    Args:
        terms: per-request terms of ``P`` policies.
        combine: ``[T, M]`` task -> metric map.
        keys: ``[R]`` request ids, the keys of the bootstrap weights; None: ``0..R-1``
            (a log held whole and never cut).
        n_resamples: ``B``.
        seed: seed of the bootstrap weights.
        boot_columns: ``"none"``, ``"first"`` (percentile) or ``"all"`` (studentized).
    """
    p, r, _ = terms.numerator.shape
    m = combine.shape[1]
    keys = np.arange(r, dtype=np.int64) if keys is None else np.asarray(keys)
    if keys.shape != (r,):
        raise ValueError(f"keys must be one request id per request ({r}), got {keys.shape}")
    have = {"a": True, "d": terms.denominator is not None, "o": terms.offset is not None}
    names = tuple(n for n in _FIRST if have[n]) + tuple(
        s for s, x, y in _SECOND if have[x] and have[y])
    n_first = sum(have.values())
    width = sum(1 if n in ("d", "dd") else m for n in names)
    boot_width = {"none": 0, "first": sum(1 if n == "d" else m for n in names[:n_first]),
                  "all": width}[boot_columns]
    first = np.zeros((p, width))
    boot = np.zeros((n_resamples, p, boot_width)) if boot_width else None
    boot_n = np.zeros(n_resamples) if boot_width else None
    with one_blas_thread():  # many small products: OpenBLAS's threads only spin
        for a in range(0, r, BLOCK_REQUESTS):
            _add_block(terms, combine, keys, a, min(a + BLOCK_REQUESTS, r), names, seed,
                       first, boot, boot_n)
    scale_n = None if terms.scale is None else np.asarray(terms.scale, np.float64) * r
    return TermSums(names, m, r, first, boot, boot_n, scale_n)


def _add_block(terms: RequestTerms, combine: np.ndarray, keys: np.ndarray, a: int, b: int,
               names: tuple[str, ...], seed: int, first: np.ndarray, boot: np.ndarray | None,
               boot_n: np.ndarray | None) -> None:
    """Add the sums of requests ``a:b`` to ``first``, ``boot`` and ``boot_n`` in place."""
    cols = _columns(terms, combine, a, b, names)  # [P, c, K]
    first += cols.sum(axis=1)
    if boot is None or boot_n is None:
        return
    w = poisson_weights(keys[a:b], seed, boot.shape[0]).astype(np.float64)  # [B, c]
    boot_n += w.sum(axis=1)
    resampled = np.ascontiguousarray(cols[..., :boot.shape[2]])
    for i in range(resampled.shape[0]):  # one policy at a time: see the module docstring
        boot[:, i] += w @ resampled[i]


def _columns(terms: RequestTerms, combine: np.ndarray, a: int, b: int,
             names: tuple[str, ...]) -> np.ndarray:
    """``[P, b - a, K]`` float64 per-request columns ``names`` of requests ``a:b``."""
    base: dict[str, np.ndarray] = {
        "a": np.einsum("prt,tm->prm", terms.numerator[:, a:b].astype(np.float64), combine)}
    if terms.denominator is not None:
        base["d"] = terms.denominator[:, a:b].astype(np.float64)[..., None]
    if terms.offset is not None:
        base["o"] = np.einsum("prt,tm->prm", terms.offset[:, a:b].astype(np.float64), combine)
    second = {s: (x, y) for s, x, y in _SECOND}
    parts = [base[n] if n in base else base[second[n][0]] * base[second[n][1]] for n in names]
    return np.concatenate(parts, axis=2)


def _plain_terms(values: np.ndarray) -> RequestTerms:
    """``[Q, R, M]`` per-request values as the terms of a plain mean."""
    q = values.shape[0]
    return RequestTerms(values, None, None, np.ones(q), np.ones(q))


def _quantiles(draws: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    alpha = (1.0 - level) / 2.0
    with warnings.catch_warnings():  # an all-NaN column: no spread in any resample
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanquantile(draws, [alpha, 1.0 - alpha], axis=0)
    return low, high


class BaseInterval(abc.ABC):
    """A way of putting an interval around per-request estimates.

    A method says which sums it needs (:meth:`sums`) and how to finish from them
    (:meth:`bounds_from`); :meth:`bounds` does both on terms held whole.
    """

    level: float
    boot_columns: ClassVar[str] = "none"

    @abc.abstractmethod
    def draws(self, terms: RequestTerms, combine: np.ndarray) -> np.ndarray:
        """``[B, P, M]`` replicate estimates (bootstrap) or ``[2, P, M]`` bounds."""

    def sums(self, terms: RequestTerms, combine: np.ndarray,
             keys: np.ndarray | None = None) -> TermSums:
        """The sufficient statistics this method needs of ``terms`` (a chunk of requests
        keyed by ``keys``, the request ids; None: ``0..R-1``)."""
        return term_sums(terms, combine, keys, getattr(self, "n_resamples", 0),
                         getattr(self, "seed", 0), self.boot_columns)

    @abc.abstractmethod
    def bounds_from(self, sums: TermSums, contrast: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
        """``(low, high)`` from the sums of all chunks, each ``[P, M]`` (``[Q, M]``).

        Raises:
            ValueError: a contrast this method cannot make from per-policy sums.
        """

    def bounds(
        self, terms: RequestTerms, combine: np.ndarray, contrast: np.ndarray | None = None,
        keys: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(low, high)``, each ``[P, M]``, or ``[Q, M]`` for a ``contrast [Q, P]``.

        A contrast row ``c`` asks for the interval of ``sum_p c[p] * V_p``, e.g.
        ``[-1, 1]`` for treatment minus control on the same resampled requests.
        ``keys`` ``[R]`` are the request ids the bootstrap weights are keyed by.
        """
        return self.bounds_from(self.sums(terms, combine, keys), contrast)


@dataclass(frozen=True)
class BootstrapInterval(BaseInterval):
    """Percentile Poisson bootstrap over requests.

    Request ``r`` enters resample ``b`` with weight ``w[b, r] ~ Poisson(1)`` keyed by
    ``(seed, request id, b)``; the replicate of a plain mean is
    ``sum_r w a_r / sum_r w``, of a ratio ``s * sum_r w a_r / sum_r w d_r``. The
    resampled sums are products ``w [B, c] @ columns [c, K]`` per chunk of requests,
    one per policy so that a policy's interval does not depend on the others (see the
    module docstring).

    Args:
        n_resamples: number of bootstrap replicates ``B`` (>= 50).
        level: confidence level in (0, 1).
        seed: seed of the resampling.
    """

    n_resamples: int = 200
    level: float = 0.95
    seed: int = 0
    boot_columns: ClassVar[str] = "first"

    def __post_init__(self) -> None:
        if self.n_resamples < 50:
            raise ValueError(f"n_resamples must be >= 50, got {self.n_resamples}")
        if not 0.0 < self.level < 1.0:
            raise ValueError(f"level must be in (0, 1), got {self.level}")

    def draws(self, terms: RequestTerms, combine: np.ndarray) -> np.ndarray:
        return self.sums(terms, combine).draws()

    def bounds_from(self, sums: TermSums, contrast: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
        draws = sums.draws()  # [B, P, M]
        if contrast is not None:
            draws = np.einsum("qp,bpm->bqm", contrast, draws)
        return self.percentile_bounds(draws)

    def percentile_bounds(self, draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(low, high)`` percentiles over the first axis of replicate estimates
        ``draws [B, ...]`` (e.g. a stratified combination of several logs' draws)."""
        return _quantiles(draws, self.level)


@dataclass(frozen=True)
class NormalInterval(BaseInterval):
    """Normal approximation with the delta method for self-normalized estimators.

    The influence of request ``r`` on ``V = s * A / D`` is
    ``s * (a_r - (A / D) * d_r) / D``; its standard deviation over ``sqrt(R)``
    is the standard error, computed from the sums of ``a, d`` and their squares and
    products. A contrast needs the per-request values of several policies at once:
    :meth:`bounds` makes it from terms held whole; :meth:`bounds_from` refuses it.
    """

    level: float = 0.95

    def __post_init__(self) -> None:
        if not 0.0 < self.level < 1.0:
            raise ValueError(f"level must be in (0, 1), got {self.level}")

    def draws(self, terms: RequestTerms, combine: np.ndarray) -> np.ndarray:
        low, high = self.bounds(terms, combine)
        return np.stack([low, high])

    def _z(self) -> float:
        from scipy import stats  # here: importing scipy.stats costs ~0.5 s at CLI start

        return float(stats.norm.ppf(0.5 + self.level / 2.0))

    def bounds_from(self, sums: TermSums, contrast: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
        _no_contrast(self, contrast)
        value, se = sums.values(), sums.standard_errors()
        z = self._z()
        return value - z * se, value + z * se

    def bounds(
        self, terms: RequestTerms, combine: np.ndarray, contrast: np.ndarray | None = None,
        keys: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        if contrast is None:
            return self.bounds_from(self.sums(terms, combine, keys))
        value = contrast @ point_values(terms, combine)
        infl = np.einsum("qp,prm->qrm", contrast, influence(terms, combine))
        se = self.sums(_plain_terms(infl), np.eye(infl.shape[2])).standard_errors()
        z = self._z()
        return value - z * se, value + z * se


def _no_contrast(interval: BaseInterval, contrast: np.ndarray | None) -> None:
    if contrast is not None:
        raise ValueError(
            f"{type(interval).__name__} makes a contrast's interval from the per-request "
            "values of both arms, which sums of a streamed log do not keep; use the "
            "percentile bootstrap (interval 'bootstrap') for a paired contrast (an A/B "
            "lift, a guardrail, a comparison) on a streamed log")


@dataclass(frozen=True)
class StudentizedBootstrapInterval(BaseInterval):
    """Bootstrap-t: the bootstrap distribution of ``t = (V* - V) / se*``, not of ``V*``.

    For each resample ``b`` (the Poisson weights of :class:`BootstrapInterval` with
    this seed) it takes the replicate estimate ``V*_b`` and its own delta-method
    standard error ``se*_b``, the resampled spread of the per-request influence values
    of :func:`influence` (fixed at the full sample's linearization point, so the
    resampled sums of ``a, d, o`` and their squares and products give it for every
    policy and metric). With ``t_q`` the quantiles of ``t_b = (V*_b - V) / se*_b`` the
    interval is

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
    boot_columns: ClassVar[str] = "all"

    def __post_init__(self) -> None:
        # the same checks and resamples as the percentile bootstrap of this seed
        object.__setattr__(self, "_boot", BootstrapInterval(self.n_resamples, self.level,
                                                            self.seed))

    def draws(self, terms: RequestTerms, combine: np.ndarray) -> np.ndarray:
        """``[B, P, M]`` replicate estimates (those of :class:`BootstrapInterval`)."""
        boot: BootstrapInterval = self.__dict__["_boot"]
        return boot.draws(terms, combine)

    def bounds_from(self, sums: TermSums, contrast: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
        _no_contrast(self, contrast)
        assert sums.boot is not None and sums.boot_n is not None
        s1, s2 = sums.influence_sums(sums.boot)  # [B, P, M]
        return self._finish(sums.draws(), sums.values(), sums.standard_errors(), s1, s2,
                            sums.boot_n)

    def bounds(
        self, terms: RequestTerms, combine: np.ndarray, contrast: np.ndarray | None = None,
        keys: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        if contrast is None:
            return self.bounds_from(self.sums(terms, combine, keys))
        sums = term_sums(terms, combine, keys, self.n_resamples, self.seed, "first")
        draws = np.einsum("qp,bpm->bqm", contrast, sums.draws())
        value = contrast @ sums.values()
        infl = np.einsum("qp,prm->qrm", contrast, influence(terms, combine))  # [Q, R, M]
        plain = term_sums(_plain_terms(infl), np.eye(infl.shape[2]), keys, self.n_resamples,
                          self.seed, "all")
        assert plain.boot is not None and plain.boot_n is not None
        s1, s2 = plain.influence_sums(plain.boot)
        return self._finish(draws, value, plain.standard_errors(), s1, s2, plain.boot_n)

    def _finish(self, draws: np.ndarray, value: np.ndarray, se: np.ndarray, s1: np.ndarray,
                s2: np.ndarray, nb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The interval from replicates ``draws [B, Q, M]``, the estimate and standard error
        ``[Q, M]`` and the resampled influence sums ``s1, s2 [B, Q, M]`` of ``nb [B]``
        resampled requests."""
        n = nb[:, None, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            se_b = np.sqrt(np.maximum(s2 - s1 * s1 / n, 0.0) / (n * (n - 1.0)))
            t = np.where(se_b > 0, (draws - value) / se_b, np.nan)
        t_low, t_high = _quantiles(t, self.level)
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
