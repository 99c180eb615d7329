"""The ordering module against Monte Carlo: covariance of estimates and expected Kendall tau."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from simulator.estimators import SNIPS, SlateFeedback
from simulator.fusion import MultiplicativeFusion
from simulator.intervals import NormalInterval, point_values
from simulator.ordering import (
    covariance,
    expected_kendall_tau,
    prob_ordered,
    requests_for_kendall_tau,
    requests_to_separate,
)
from simulator.policies import TopKPolicy
from simulator.replay import Replay, objective_matrix
from tests.simulator.toylog import TASKS, make_toy

WEIGHTS = np.array([[1.0, 0.0], [0.2, 1.0], [1.0, 1.0], [1.0, 0.5]])


@pytest.mark.slow
def test_covariance_predicts_the_spread_of_differences_over_fresh_logs() -> None:
    # the toy world keeps its requests and true rewards across seeds; only the
    # logging draws and labels change, so the spread over seeds is the noise
    combine = objective_matrix(TASKS, {"click": 1.0, "like": 1.0})
    values, covs = [], []
    for seed in range(200):
        traffic, _, scores = make_toy(seed)
        replay = Replay(SlateFeedback.from_traffic(traffic), scores, TASKS,
                        MultiplicativeFusion(), TopKPolicy(3), SNIPS(), NormalInterval())
        terms = replay.terms(WEIGHTS)
        values.append(point_values(terms, combine)[:, -1])
        covs.append(covariance(terms, combine)[-1])
    values_arr, cov = np.array(values), np.mean(covs, axis=0)
    i, j = np.triu_indices(len(WEIGHTS), 1)
    observed = np.std(values_arr[:, i] - values_arr[:, j], axis=0, ddof=1)
    predicted = np.sqrt(cov[i, i] + cov[j, j] - 2 * cov[i, j])
    np.testing.assert_allclose(observed / predicted, 1.0, atol=0.15)
    # the shared log matters: treating the estimates as independent overstates
    # the noise of some difference by far more than the tolerance above
    independent = np.sqrt(cov[i, i] + cov[j, j])
    assert (independent / observed).max() > 1.5


@pytest.mark.slow
def test_expected_kendall_tau_matches_simulated_normal_estimates() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(0.0, 1.0, 12)
    a = rng.normal(0.0, 0.6, (12, 12))
    cov = a @ a.T / 12 + 0.05 * np.eye(12)
    draws = rng.multivariate_normal(values, cov, size=4000)
    taus = [stats.kendalltau(d, values).statistic for d in draws]
    expected = expected_kendall_tau(values, cov)
    assert abs(np.mean(taus) - expected) < 0.01, (np.mean(taus), expected)
    assert 0.2 < expected < 0.9  # a case that is neither trivial nor hopeless


def test_tau_rises_with_log_size_and_requests_for_tau_inverts_it() -> None:
    values = np.linspace(0.0, 1.0, 10)
    cov = 0.04 * np.eye(10)
    taus = [expected_kendall_tau(values, cov, f) for f in (1, 4, 16)]
    assert taus[0] < taus[1] < taus[2] < 1.0
    need = requests_for_kendall_tau(values, cov, requests=1000, target=0.9)
    assert need > 1000
    assert expected_kendall_tau(values, cov, need / 1000) == pytest.approx(0.9, abs=1e-6)
    assert requests_for_kendall_tau(np.zeros(3), cov[:3, :3], 1000) == float("inf")


def test_prob_ordered_edges() -> None:
    p = prob_ordered(np.array([1.0, 1.0, 2.0]), np.zeros((3, 3)))
    assert p[0, 1] == 0.5 and p[0, 2] == 1.0
    p = prob_ordered(np.array([0.0, 1.0]), np.array([[1.0, 0.0], [0.0, 1.0]]))
    assert p[0, 1] == pytest.approx(stats.norm.cdf(1 / np.sqrt(2)))


def test_requests_to_separate() -> None:
    # at the observed size a difference of 1.96 standard errors is just significant
    assert requests_to_separate(1.96, 1.0, 1000) == pytest.approx(1000, rel=1e-3)
    assert requests_to_separate(0.98, 1.0, 1000) == pytest.approx(4000, rel=1e-3)
    assert requests_to_separate(0.0, 1.0, 1000) == float("inf")


@pytest.mark.parametrize("bad", [{"values": np.zeros(1)}, {"factor": 0.0}])
def test_bad_arguments_are_refused(bad) -> None:
    args = {"values": np.zeros(3), "cov": np.eye(3), "factor": 1.0} | bad
    cov = args["cov"][: len(args["values"]), : len(args["values"])]
    with pytest.raises(ValueError, match="values|factor"):
        expected_kendall_tau(args["values"], cov, args["factor"])
