"""How well one log can order weight vectors.

Estimates of several weight vectors made on the same log share its requests and
labels, so their errors are correlated; what decides whether the log orders two
vectors rightly is the standard error of their *difference*. From the
per-request influence values (:func:`simulator.intervals.influence`) this module
gives the delta-method covariance of the estimates, the probability that a
pair is ordered rightly, the expected Kendall tau of an unbiased estimate, and
how many requests it would take to separate a pair or reach a target tau.

All of it assumes an unbiased (or consistent) estimator with normal errors;
the covariance falls as ``1 / R`` with the number of requests ``R``. Checked
against Monte Carlo in ``tests/simulator/test_ordering.py`` and, on the two
worlds with exact truth, by ``bench/estimator_quality.py`` (its "expected tau"
column beside the measured one).
"""

from __future__ import annotations

import numpy as np

from simulator.estimators import RequestTerms
from simulator.intervals import influence

__all__ = [
    "covariance",
    "expected_kendall_tau",
    "prob_ordered",
    "requests_for_kendall_tau",
    "requests_to_separate",
]


def covariance(terms: RequestTerms, combine: np.ndarray) -> np.ndarray:
    """``[M, P, P]`` delta-method covariance of the ``P`` estimates, per metric.

    ``cov[m, p, q] = sum_r infl[p, r, m] infl[q, r, m] / R^2`` with the influence
    values centred per policy (their mean is 0 for every estimator but the
    rounding).

    Args:
        terms: per-request terms of ``P`` policies on one log.
        combine: ``[T, M]`` task -> metric matrix (``objective_matrix``).
    """
    infl = influence(terms, combine)  # [P, R, M]
    infl = infl - infl.mean(axis=1, keepdims=True)
    r = infl.shape[1]
    return np.einsum("prm,qrm->mpq", infl, infl) / float(r) ** 2


def _pair_sd(cov: np.ndarray) -> np.ndarray:
    """``[P, P]`` standard deviation of the difference of each pair of estimates."""
    var = np.diag(cov)
    return np.sqrt(np.maximum(var[:, None] + var[None, :] - 2.0 * cov, 0.0))


def prob_ordered(values: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """``[P, P]``: the probability that estimates order the pair ``(p, q)`` as ``values`` do.

    ``Phi(|v_p - v_q| / sd(e_p - e_q))``; 1 where the pair's difference has no
    noise and differs, 0.5 where the values tie.

    Args:
        values: ``[P]`` values (the truth, or a plug-in estimate of it).
        cov: ``[P, P]`` covariance of the estimates.
    """
    from scipy import stats  # here: importing scipy.stats costs ~0.5 s at CLI start

    gap = np.abs(values[:, None] - values[None, :])
    sd = _pair_sd(cov)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sd > 0, gap / np.where(sd > 0, sd, 1.0), np.where(gap > 0, np.inf, 0.0))
    return np.asarray(stats.norm.cdf(z))


def expected_kendall_tau(values: np.ndarray, cov: np.ndarray, factor: float = 1.0) -> float:
    """Expected Kendall tau between unbiased normal estimates and ``values``.

    A pair is ordered rightly with probability ``P = prob_ordered``, so by
    linearity of expectation the expected tau is the mean over pairs of
    ``2 P - 1`` (ties in ``values`` count 0).

    Args:
        values: ``[P]`` true values.
        cov: ``[P, P]`` covariance of the estimates on the log.
        factor: how many times larger the log is; the covariance becomes ``cov / factor``.

    Raises:
        ValueError: fewer than two values, or a ``factor`` that is not > 0.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or len(values) < 2:
        raise ValueError(f"values must be [P] with P >= 2, got shape {values.shape}")
    if not factor > 0:
        raise ValueError(f"factor must be > 0, got {factor}")
    i, j = np.triu_indices(len(values), 1)
    p = prob_ordered(values, np.asarray(cov, dtype=np.float64) / factor)[i, j]
    return float(np.mean(2.0 * p - 1.0))


def requests_for_kendall_tau(values: np.ndarray, cov: np.ndarray, requests: int,
                             target: float = 0.9) -> float:
    """Requests at which :func:`expected_kendall_tau` reaches ``target``.

    Bisection on the log size between ``requests / 64`` and ``requests * 2**20``;
    ``inf`` if even the largest does not reach it (ties in ``values``).

    Raises:
        ValueError: a ``target`` outside ``(0, 1)``.
    """
    if not 0.0 < target < 1.0:
        raise ValueError(f"target must be in (0, 1), got {target}")
    low, high = -6.0, 20.0  # log2 of the factor
    if expected_kendall_tau(values, cov, 2.0 ** high) < target:
        return float("inf")
    for _ in range(50):
        mid = (low + high) / 2.0
        if expected_kendall_tau(values, cov, 2.0 ** mid) < target:
            low = mid
        else:
            high = mid
    return float(requests * 2.0 ** high)


def requests_to_separate(diff: float, sd: float, requests: int, level: float = 0.95) -> float:
    """Requests at which a difference ``diff`` with standard error ``sd`` (on
    ``requests`` requests) would reach two-sided significance at ``level``.

    ``requests * (z sd / diff)^2`` with ``z`` the normal quantile; ``inf`` when
    ``diff`` is 0. A planning figure that takes the observed difference at face
    value, not a promise.
    """
    from scipy import stats

    z = float(stats.norm.ppf(0.5 + level / 2.0))
    if diff == 0.0:
        return float("inf")
    return float(requests * (z * sd / diff) ** 2)
