"""gated_dr: the gate's arithmetic, its consistency, and its ordering against the truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from simulator.estimators import DoublyRobust, GatedDR, PooledDR, RequestTerms, SlateFeedback
from simulator.intervals import NormalInterval
from simulator.replay import Replay
from tests import worldkit


def _terms(deviation: np.ndarray, requests: int, seed: int) -> RequestTerms:
    """Corrections ``[P, R, 1]`` whose vectors share heavy-tailed noise, with true mean
    deviations ``deviation [P]``: every request holds a rare event that ~half the
    vectors weigh heavily, as a like seen by half the population does."""
    rng = np.random.default_rng(seed)
    p = len(deviation)
    event = rng.binomial(1, 0.01, requests) * rng.exponential(20.0, requests)  # [R]
    seen = rng.uniform(size=(p, 1)) < 0.5  # [P, 1] which vectors weigh the event
    own = rng.normal(0.0, 0.3, (p, requests))
    c = deviation[:, None] + seen * (event - 0.2)[None] + own  # the event's mean is 0.2
    num = c[..., None].astype(np.float32)
    ones = np.ones(p)
    return RequestTerms(num, None, None, ones, ones, offset=np.zeros_like(num))


def test_the_gate_only_lowers_james_stein_s_factor_and_gate_zero_is_pooled_dr() -> None:
    terms = _terms(np.linspace(-0.05, 0.05, 40), 4000, 0)
    js = PooledDR().pooling(terms)[1]
    assert np.array_equal(GatedDR(gate=0.0).pooling(terms)[1], js)
    gated = GatedDR().pooling(terms)[1]
    assert (gated <= js).all() and (gated < js).any()


def test_pure_noise_moves_no_vector_in_most_logs() -> None:
    """Deviations all 0: by Cantelli the gate lets noise through in at most 1 / (1 + 2^2)
    of logs."""
    gated = [GatedDR().pooling(_terms(np.zeros(30), 1000, seed))[1][0] for seed in range(20)]
    assert np.mean(np.array(gated) > 0) <= 0.2


def test_consistent_real_deviations_are_kept_as_the_log_grows() -> None:
    deviation = np.linspace(-0.2, 0.2, 40)
    lam = [GatedDR().pooling(_terms(deviation, r, 1))[1][0] for r in (500, 20000)]
    assert lam[0] < lam[1] and lam[1] > 0.9


def test_pooled_spread_is_the_pooled_estimator_s_own() -> None:
    """Per-request terms average to the pooled estimate under either spread; with
    ``spread="pooled"`` they are ``c_bar_r + lambda (c_pr - c_bar_r)``."""
    terms = _terms(np.linspace(-0.1, 0.1, 30), 3000, 2)
    lam = GatedDR().pooling(terms)[1][0]
    assert 0 < lam < 1
    pooled = GatedDR().finish(terms).numerator[..., 0].astype(np.float64)
    wide = GatedDR(spread="dr").finish(terms).numerator[..., 0].astype(np.float64)
    np.testing.assert_allclose(pooled.mean(axis=1), wide.mean(axis=1), atol=1e-5)
    c = terms.numerator[..., 0].astype(np.float64)
    common = c.mean(axis=0)
    np.testing.assert_allclose(pooled, common + lam * (c - common), atol=1e-4)
    # not narrower for every vector: one that missed the shared event takes on its share
    assert not np.allclose(pooled.std(axis=1), wide.std(axis=1), rtol=0.05)


@pytest.mark.slow
def test_orders_small_marketplace_logs_better_than_dr_and_stays_near_the_truth() -> None:
    """On 4 logs of 3,000 requests, 30 vectors each: Kendall tau of the objective against
    the exact truth above DR's on the raw scores, mean error within 2% of the truth."""
    taus: list[float] = []
    dr_taus: list[float] = []
    errors: list[float] = []
    for seed in range(40, 44):
        log = worldkit.make_log(seed, 3000)
        weights = worldkit.random_weights(np.random.default_rng(seed), 30)
        truth = worldkit.objective_of(log.true_values(weights))
        fb = SlateFeedback.from_traffic(log.traffic, worldkit.TASKS, reward_model=log.scores)
        for est, out in ((GatedDR(), taus), (DoublyRobust(), dr_taus)):
            replay = Replay(fb, log.scores, worldkit.TASKS, worldkit.FUSION, log.policy, est,
                            NormalInterval())
            value = log.estimate(replay, weights)
            out.append(float(stats.kendalltau(value, truth).statistic))
            if isinstance(est, GatedDR):
                errors.append(float(np.mean((value - truth) / truth)))
    assert np.mean(taus) > np.mean(dr_taus) + 0.05
    assert abs(np.mean(errors)) < 0.02


@pytest.mark.parametrize(("kwargs", "pattern"), [
    ({"gate": -1.0}, "gate"),
    ({"gate": float("inf")}, "gate"),
    ({"spread": "wide"}, "spread"),
])
def test_bad_settings_are_refused(kwargs, pattern) -> None:
    with pytest.raises(ValueError, match=pattern):
        GatedDR(**kwargs)
