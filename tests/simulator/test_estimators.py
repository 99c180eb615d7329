"""Estimators against the known truth of a tiny position-based world."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.estimators import (
    IPS,
    SNIPS,
    BaseEstimator,
    DirectMethod,
    DoublyRobust,
    RequestTerms,
    SlateFeedback,
    make_estimator,
)
from simulator.fusion import MultiplicativeFusion
from simulator.intervals import BootstrapInterval, NormalInterval, point_values
from simulator.policies import EpsilonGreedyTopK, TopKPolicy
from simulator.replay import Replay
from tests.simulator.toylog import TASKS, make_toy

WEIGHTS = np.array([[1.0, 0.0], [0.2, 1.0], [1.0, 1.0]])
FUSION = MultiplicativeFusion()
N_SEEDS = 120


def _truth(traffic, rewards, scores, policy=None):
    policy = policy or TopKPolicy(traffic.slate_size)
    exposure = policy.exposure(FUSION.fuse(FUSION.transform(scores), WEIGHTS),
                               traffic.examination)
    return np.einsum("prn,rnt->pt", exposure, rewards) / traffic.n_requests


def _replay(traffic, scores, estimator, interval=None, policy=None):
    feedback = SlateFeedback.from_traffic(traffic, reward_model=scores)
    return Replay(feedback, scores, TASKS, FUSION, policy or TopKPolicy(traffic.slate_size),
                  estimator, interval or NormalInterval())


def _errors_and_coverage(estimator: BaseEstimator, cascade: bool = False, policy=None):
    errors, covered = [], []
    for seed in range(N_SEEDS):
        traffic, rewards, scores = make_toy(seed, cascade=cascade)
        truth = _truth(traffic, rewards, scores, policy)
        result = _replay(traffic, scores, estimator, policy=policy).evaluate(WEIGHTS)
        errors.append(result.value - truth)
        covered.append((result.low <= truth) & (truth <= result.high))
    return np.array(errors), np.array(covered)


@pytest.mark.slow
@pytest.mark.parametrize("estimator", [IPS(), SNIPS(), DoublyRobust()], ids=lambda e: e.name)
def test_unbiased_under_position_based_model(estimator: BaseEstimator) -> None:
    errors, covered = _errors_and_coverage(estimator)
    se = errors.std(axis=0, ddof=1) / np.sqrt(N_SEEDS)
    assert (np.abs(errors.mean(axis=0)) < 3 * se + 1e-9).all(), errors.mean(axis=0) / se
    coverage = covered.mean()
    assert 0.90 <= coverage <= 0.99, coverage


@pytest.mark.slow
def test_unbiased_for_a_stochastic_target_policy() -> None:
    errors, _ = _errors_and_coverage(IPS(), policy=EpsilonGreedyTopK(k=3, epsilon=0.5))
    se = errors.std(axis=0, ddof=1) / np.sqrt(N_SEEDS)
    assert (np.abs(errors.mean(axis=0)) < 3 * se).all()


@pytest.mark.slow
def test_ips_is_biased_when_users_cascade() -> None:
    # A cascade (stop after the first click) breaks the position-based model:
    # lower slots get fewer clicks than examination * r, so IPS overstates
    # policies that move items to the lower slots.
    errors, _ = _errors_and_coverage(IPS(), cascade=True)
    se = errors.std(axis=0, ddof=1) / np.sqrt(N_SEEDS)
    assert (np.abs(errors.mean(axis=0)[:, 0]) > 3 * se[:, 0]).any()


def test_direct_method_is_biased_by_a_biased_model() -> None:
    traffic, rewards, scores = make_toy(0)
    truth = _truth(traffic, rewards, scores)
    result = _replay(traffic, scores, DirectMethod()).evaluate(WEIGHTS)
    # the toy's model inflates rewards by exp(N(0, 0.3^2)) on average
    assert (result.value > truth).all()
    traffic, rewards, _ = make_toy(0)
    exact = _replay(traffic, rewards, DirectMethod()).evaluate(WEIGHTS)
    np.testing.assert_allclose(exact.value, _truth(traffic, rewards, rewards), rtol=1e-5)


def test_bootstrap_and_normal_intervals_agree_roughly() -> None:
    traffic, _, scores = make_toy(3, n_requests=2000)
    boot = _replay(traffic, scores, SNIPS(), BootstrapInterval(400, seed=1)).evaluate(WEIGHTS)
    norm = _replay(traffic, scores, SNIPS(), NormalInterval()).evaluate(WEIGHTS)
    np.testing.assert_allclose(boot.value, norm.value)
    np.testing.assert_allclose(boot.high - boot.low, norm.high - norm.low, rtol=0.25)


def test_bootstrap_is_seeded() -> None:
    traffic, _, scores = make_toy(3)
    a = _replay(traffic, scores, IPS(), BootstrapInterval(seed=5)).evaluate(WEIGHTS)
    b = _replay(traffic, scores, IPS(), BootstrapInterval(seed=5)).evaluate(WEIGHTS)
    c = _replay(traffic, scores, IPS(), BootstrapInterval(seed=6)).evaluate(WEIGHTS)
    np.testing.assert_array_equal(a.low, b.low)
    assert not np.array_equal(a.low, c.low)


def test_ess_is_n_for_the_logging_policy_under_ips_and_smaller_elsewhere() -> None:
    traffic, _, scores = make_toy(0)
    feedback = SlateFeedback.from_traffic(traffic)
    logging_exposure = (traffic.pscores @ traffic.examination)[None].astype(np.float32)
    terms = IPS().terms(feedback, logging_exposure)
    n_shown = traffic.shown.sum()
    assert terms.ess[0] == pytest.approx(n_shown, rel=1e-6)
    result = _replay(traffic, scores, IPS()).evaluate(WEIGHTS)
    assert (result.ess < n_shown).all()


def test_chunking_does_not_change_results() -> None:
    traffic, _, scores = make_toy(1)
    feedback = SlateFeedback.from_traffic(traffic)
    whole = Replay(feedback, scores, TASKS, FUSION, TopKPolicy(3), SNIPS(),
                   chunk_requests=10_000).evaluate(WEIGHTS)
    parts = Replay(feedback, scores, TASKS, FUSION, TopKPolicy(3), SNIPS(),
                   chunk_requests=37).evaluate(WEIGHTS)
    np.testing.assert_allclose(whole.value, parts.value, rtol=1e-5)
    np.testing.assert_allclose(whole.low, parts.low, rtol=1e-5)


def test_joined_chunks_keep_the_self_normalized_scale_of_the_whole_log() -> None:
    # a target that fills fewer slots on some requests: its exposure per request
    # (the SNIPS scale) differs between chunks, and the joined terms must still
    # equal the terms of the whole log
    traffic, _, _ = make_toy(2)
    feedback = SlateFeedback.from_traffic(traffic)
    exposure = (traffic.pscores @ traffic.examination)[None].astype(np.float32)
    exposure[:, : traffic.n_requests // 3] *= 0.25
    combine = np.eye(len(TASKS))
    whole = point_values(SNIPS().terms(feedback, exposure), combine)
    cut = [0, 7, traffic.n_requests // 3 + 5, traffic.n_requests]
    joined = RequestTerms.concatenate([
        SNIPS().terms(feedback.chunk(a, b), exposure[:, a:b]) for a, b in
        zip(cut[:-1], cut[1:], strict=True)])
    np.testing.assert_allclose(point_values(joined, combine), whole, rtol=1e-6)


def test_objective_column_is_the_weighted_sum() -> None:
    traffic, _, scores = make_toy(1)
    result = _replay(traffic, scores, SNIPS()).evaluate(WEIGHTS, {"click": 1.0, "like": 3.0})
    assert result.metrics == ("click", "like", "objective")
    np.testing.assert_allclose(result.value[:, 2], result.value[:, 0] + 3 * result.value[:, 1])
    est = result.estimate(1)
    assert est.low <= est.value <= est.high and est.n == traffic.n_requests


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"objective": {"clicks": 1.0}}, "unknown task"),
        ({"weights": np.array([[1.0, np.nan]])}, "must be finite"),
        ({"weights": np.array([[1.0, -1.0]])}, "needs weights >= 0"),
        ({"weights": np.array([1.0, 1.0, 1.0])}, "needs 2 weights"),
    ],
)
def test_bad_inputs_are_refused(kwargs, match) -> None:
    traffic, _, scores = make_toy(0, n_requests=20)
    replay = _replay(traffic, scores, IPS())
    with pytest.raises(ValueError, match=match):
        replay.evaluate(kwargs.get("weights", WEIGHTS), kwargs.get("objective"))


def test_dm_without_reward_model_is_refused() -> None:
    traffic, _, scores = make_toy(0, n_requests=20)
    feedback = SlateFeedback.from_traffic(traffic)
    replay = Replay(feedback, scores, TASKS, FUSION, TopKPolicy(3), DirectMethod())
    with pytest.raises(ValueError, match="needs a reward model"):
        replay.evaluate(WEIGHTS)


def test_make_estimator_lists_valid_names() -> None:
    assert make_estimator("snips").name == "snips"
    with pytest.raises(ValueError, match="valid: \\['clipped_ips', 'dm', 'dr', 'gated_dr', "
                                         "'iips', 'ips', "):
        make_estimator("magic")
