"""Coverage of the intervals against a known mean on skewed toy data.

Each of ``P`` "policies" is an independent sample of ``R`` requests, so one
call gives ``P`` intervals and their coverage of the known truth.
"""

from __future__ import annotations

import numpy as np
import pytest

from simulator.estimators import RequestTerms
from simulator.intervals import (
    BootstrapInterval,
    NormalInterval,
    StudentizedBootstrapInterval,
    point_values,
)

COMBINE = np.eye(1)


def _plain(x: np.ndarray) -> RequestTerms:
    p = x.shape[0]
    return RequestTerms(x[..., None].astype(np.float32), None, None, np.ones(p), np.ones(p))


def _coverage(interval: object, terms: RequestTerms, truth: float) -> float:
    low, high = interval.bounds(terms, COMBINE)  # type: ignore[attr-defined]
    return float(((low[:, 0] <= truth) & (truth <= high[:, 0])).mean())


def test_studentized_bootstrap_corrects_the_skew_of_a_lognormal_mean() -> None:
    # mean of 200 log-normal(0, 1.5) draws: the standard error grows with the
    # estimate, so the normal and percentile intervals miss on the high side
    rng = np.random.default_rng(0)
    terms = _plain(rng.lognormal(0.0, 1.5, (1000, 200)))
    truth = float(np.exp(1.5**2 / 2))
    normal = _coverage(NormalInterval(), terms, truth)
    percentile = _coverage(BootstrapInterval(200, seed=1), terms, truth)
    student = _coverage(StudentizedBootstrapInterval(200, seed=1), terms, truth)
    assert normal < 0.90 and percentile < 0.90
    assert student >= 0.90 and student > max(normal, percentile) + 0.015


def test_studentized_bootstrap_is_not_wider_than_needed_on_symmetric_data() -> None:
    rng = np.random.default_rng(2)
    terms = _plain(rng.normal(1.0, 1.0, (1000, 200)))
    assert 0.93 <= _coverage(StudentizedBootstrapInterval(200, seed=3), terms, 1.0) <= 0.97


def test_studentized_bootstrap_of_a_ratio_and_of_a_contrast() -> None:
    # self-normalized: sum w y / sum w with E[w] = 1, y ~ Bernoulli(0.3): truth 0.3;
    # the contrast of two independent samples of it has truth 0
    rng = np.random.default_rng(4)
    p, r = 1000, 300
    w = rng.lognormal(-0.5**2 / 2, 0.5, (p, r)).astype(np.float32)
    y = (rng.random((p, r)) < 0.3).astype(np.float32)
    terms = RequestTerms((w * y)[..., None], w, np.ones(p), np.ones(p), np.ones(p))
    interval = StudentizedBootstrapInterval(200, seed=5)
    low, high = interval.bounds(terms, COMBINE)
    value = point_values(terms, COMBINE)
    assert (low <= value).all() and (value <= high).all()
    assert 0.93 <= float(((low <= 0.3) & (high >= 0.3)).mean()) <= 0.97
    contrast = np.zeros((p // 2, p))
    contrast[np.arange(p // 2), np.arange(0, p, 2)] = -1.0
    contrast[np.arange(p // 2), np.arange(1, p, 2)] = 1.0
    c_low, c_high = interval.bounds(terms, COMBINE, contrast)
    assert c_low.shape == (p // 2, 1)
    assert 0.92 <= float(((c_low <= 0) & (c_high >= 0)).mean()) <= 0.98


def test_studentized_bootstrap_is_seeded_and_validated() -> None:
    terms = _plain(np.random.default_rng(6).lognormal(0.0, 1.0, (3, 50)))
    a = StudentizedBootstrapInterval(100, seed=7).bounds(terms, COMBINE)
    b = StudentizedBootstrapInterval(100, seed=7).bounds(terms, COMBINE)
    np.testing.assert_array_equal(a[0], b[0])
    with pytest.raises(ValueError, match="n_resamples must be >= 50"):
        StudentizedBootstrapInterval(10)
    with pytest.raises(ValueError, match="level must be in"):
        StudentizedBootstrapInterval(level=1.5)


def test_a_metric_without_spread_is_a_point() -> None:
    terms = _plain(np.full((2, 40), 0.5))
    low, high = StudentizedBootstrapInterval(100).bounds(terms, COMBINE)
    np.testing.assert_allclose(low, 0.5, rtol=1e-6)
    np.testing.assert_allclose(high, 0.5, rtol=1e-6)


def test_intervals_dict_maps_every_name_to_its_class_and_make_interval_uses_it() -> None:
    from simulator.intervals import INTERVALS, BaseInterval, make_interval

    assert list(INTERVALS) == ["bootstrap", "studentized", "normal"]
    for name, cls in INTERVALS.items():
        assert issubclass(cls, BaseInterval)
        made = make_interval(name, 60, seed=3)
        assert type(made) is cls
        if hasattr(made, "n_resamples"):
            assert (made.n_resamples, made.seed) == (60, 3)  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match=r"unknown interval 'bca'; valid: \['bootstrap'"):
        make_interval("bca")
