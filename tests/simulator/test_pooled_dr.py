"""pooled_dr: the calibration, the pooling's invariants, and its value on a world."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.estimators import DoublyRobust, PooledDR, SlateFeedback
from simulator.estimators._calibration import calibrate, fit_poisson
from simulator.intervals import NormalInterval, point_values
from simulator.replay import Replay, objective_matrix
from tests import worldkit


def test_fit_poisson_recovers_known_coefficients() -> None:
    rng = np.random.default_rng(0)
    x = np.column_stack([np.ones(20000), rng.normal(size=20000)])
    offset = np.log(rng.uniform(0.3, 1.0, 20000))
    y = rng.poisson(np.exp(offset + x @ np.array([-1.5, 0.7])))
    b = fit_poisson(x, y.astype(float), offset, np.zeros(2))
    np.testing.assert_allclose(b, [-1.5, 0.7], atol=0.05)


def test_calibration_is_cross_fitted_and_undoes_a_miscalibrated_score() -> None:
    log = worldkit.make_log(3, 3000)
    fb = SlateFeedback.from_traffic(log.traffic, worldkit.TASKS, reward_model=log.scores)
    assert fb.reward_model is not None
    # a request's own labels never enter its prediction: changing fold 0's labels
    # leaves fold 0's predictions as they were
    base = calibrate(fb.rewards, fb.shown, fb.slot_examination, fb.reward_model, 2)
    flipped = fb.rewards.copy()
    flipped[0::2] = np.where(fb.shown[0::2, :, None], 1.0 - flipped[0::2], 0.0)
    other = calibrate(flipped, fb.shown, fb.slot_examination, fb.reward_model, 2)
    np.testing.assert_array_equal(base[0::2], other[0::2])
    # scores halved: the calibrated level matches the labels again
    half = calibrate(fb.rewards, fb.shown, fb.slot_examination, fb.reward_model * 0.5, 2)
    fitted = (half * fb.slot_examination[..., None])[fb.shown].sum(axis=0)
    np.testing.assert_allclose(fitted, fb.rewards[fb.shown].sum(axis=0), rtol=0.05)


def _replay(log: worldkit.WorldLog, estimator, chunk: int = 5000) -> Replay:
    fb = SlateFeedback.from_traffic(log.traffic, worldkit.TASKS, reward_model=log.scores)
    return Replay(fb, log.scores, worldkit.TASKS, worldkit.FUSION, log.policy, estimator,
                  NormalInterval(), chunk_requests=chunk)


def test_no_shrinkage_is_dr_on_the_calibrated_model_and_pooling_keeps_the_mean() -> None:
    log = worldkit.make_log(4, 3000)
    weights = worldkit.random_weights(np.random.default_rng(1), 30)
    combine = objective_matrix(worldkit.TASKS, worldkit.OBJECTIVE_WEIGHTS)
    est = PooledDR(shrinkage=1.0)
    calibrated = est.prepare(_replay(log, est).feedback)
    dr = Replay(calibrated, log.scores, worldkit.TASKS, worldkit.FUSION, log.policy,
                DoublyRobust()).terms(weights)
    plain = point_values(_replay(log, est).terms(weights), combine)
    np.testing.assert_allclose(plain, point_values(dr, combine), rtol=1e-5, atol=1e-6)
    pooled = point_values(_replay(log, PooledDR()).terms(weights), combine)
    # the pooling moves vectors towards the population's correction: the mean stays
    np.testing.assert_allclose(pooled.mean(axis=0), plain.mean(axis=0), rtol=1e-5)
    assert not np.allclose(pooled, plain)


def test_estimates_do_not_depend_on_the_chunking() -> None:
    log = worldkit.make_log(5, 2500)
    weights = worldkit.random_weights(np.random.default_rng(2), 12)
    a = _replay(log, PooledDR(), chunk=5000).evaluate(weights, worldkit.OBJECTIVE_WEIGHTS)
    b = _replay(log, PooledDR(), chunk=700).evaluate(weights, worldkit.OBJECTIVE_WEIGHTS)
    np.testing.assert_allclose(a.value, b.value, rtol=1e-4)
    np.testing.assert_allclose(a.low, b.low, rtol=1e-3)


def test_an_ab_pair_is_not_pooled() -> None:
    log = worldkit.make_log(6, 1500)
    weights = worldkit.random_weights(np.random.default_rng(3), 2)
    pooled = _replay(log, PooledDR()).evaluate(weights).value
    plain = _replay(log, PooledDR(shrinkage=1.0)).evaluate(weights).value
    np.testing.assert_array_equal(pooled, plain)


def test_close_to_the_truth_on_the_marketplace() -> None:
    """Mean error over 4 logs and 20 vectors within 2% of the true objective; each vector's
    objective interval covers its truth on most logs."""
    errors, hits = [], []
    for seed in range(30, 34):
        log = worldkit.make_log(seed, 3000)
        weights = worldkit.random_weights(np.random.default_rng(seed), 20)
        truth = worldkit.objective_of(log.true_values(weights))
        result = _replay(log, PooledDR()).evaluate(weights, worldkit.OBJECTIVE_WEIGHTS)
        value, low, high = (x[:, -1] for x in (result.value, result.low, result.high))
        errors.append((value - truth) / truth)
        hits.append((low <= truth) & (truth <= high))
    assert abs(np.mean(errors)) < 0.02
    assert np.mean(hits) > 0.8


@pytest.mark.parametrize(("kwargs", "pattern"), [
    ({"shrinkage": 1.5}, "shrinkage"),
    ({"shrinkage": -0.1}, "shrinkage"),
    ({"folds": 1}, "folds"),
    ({"min_population": 2}, "min_population"),
    ({"prior": "median"}, "prior"),
    ({"spread": "wide"}, "spread"),
    ({"gate": -0.5}, "gate"),
])
def test_bad_settings_are_refused(kwargs, pattern) -> None:
    with pytest.raises(ValueError, match=pattern):
        PooledDR(**kwargs)


def test_without_a_reward_model_it_says_so() -> None:
    log = worldkit.make_log(7, 200)
    fb = SlateFeedback.from_traffic(log.traffic, worldkit.TASKS)
    with pytest.raises(ValueError, match="reward model"):
        PooledDR().prepare(fb)


def test_the_pooling_moves_estimates_and_spread_dr_keeps_dr_s_interval_width() -> None:
    log = worldkit.make_log(8, 2000)
    weights = worldkit.random_weights(np.random.default_rng(4), 10)
    pooled = _replay(log, PooledDR(spread="dr")).evaluate(weights, worldkit.OBJECTIVE_WEIGHTS)
    plain = _replay(log, PooledDR(shrinkage=1.0)).evaluate(weights, worldkit.OBJECTIVE_WEIGHTS)
    np.testing.assert_allclose(pooled.high - pooled.low, plain.high - plain.low, rtol=1e-3)
    assert not np.allclose(pooled.value, plain.value)
