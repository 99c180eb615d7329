"""Fused-score AUC proxies against a slow pair-counting reference, and on a world."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from simulator.estimators import SlateFeedback
from simulator.fusion import MultiplicativeFusion
from simulator.logs import LoggedTraffic
from simulator.proxies import AUCProxy, OrderingScores, auc_reference, gauc_reference
from tests import worldkit
from tests.simulator.toylog import TASKS, make_toy

FUSION = MultiplicativeFusion()
WEIGHTS = np.array([[1.0, 0.0], [0.2, 1.0], [1.0, 1.0], [0.0, 2.0]])


def _reference(traffic: LoggedTraffic, scores: np.ndarray, weights: np.ndarray,
               weighting: str) -> tuple[np.ndarray, np.ndarray]:
    """``[P, T]`` AUC and GAUC by counting pairs, one vector and one request at a time."""
    fused = FUSION.fuse(FUSION.transform(scores), weights)  # [P, R, N]
    shown = traffic.shown
    auc = np.zeros((len(weights), len(TASKS)))
    gauc = np.zeros_like(auc)
    for p in range(len(weights)):
        for t, task in enumerate(TASKS):
            y = traffic.labels[task]
            auc[p, t] = auc_reference(fused[p][shown], y[shown])
            flat_f, flat_y, groups, start = [], [], [], 0
            for r in range(traffic.n_requests):
                idx = np.flatnonzero(shown[r])
                flat_f.append(fused[p, r, idx])
                flat_y.append(y[r, idx])
                groups.append(np.arange(start, start + len(idx)))
                start += len(idx)
            gauc[p, t] = gauc_reference(np.concatenate(flat_f), np.concatenate(flat_y),
                                        groups, weighting)
    return auc, gauc


def _ragged(traffic: LoggedTraffic, seed: int) -> LoggedTraffic:
    """The log with some impressions hidden (requests show 0..K candidates, with gaps)."""
    import dataclasses

    rng = np.random.default_rng(seed)
    hide = traffic.shown & (rng.random(traffic.shown.shape) < 0.3)
    positions = np.where(hide, -1, traffic.positions)
    labels = {t: np.where(hide, 0.0, v) for t, v in traffic.labels.items()}
    return dataclasses.replace(traffic, positions=positions, labels=labels)


@pytest.mark.parametrize("weighting", ["impressions", "requests"])
@pytest.mark.parametrize("ragged", [False, True])
def test_auc_and_gauc_equal_pair_counting_with_ties(weighting: str, ragged: bool) -> None:
    traffic, _, scores = make_toy(3, n_requests=120)
    if ragged:
        traffic = _ragged(traffic, 4)
    scores = np.round(scores, 1).clip(0.05, 1.0)  # coarse scores: many ties
    proxy = AUCProxy(SlateFeedback.from_traffic(traffic), scores, TASKS, FUSION,
                     gauc_weighting=weighting, chunk_requests=37)
    result = proxy.evaluate(WEIGHTS, {"click": 1.0, "like": 3.0})
    auc, gauc = _reference(traffic, scores, WEIGHTS, weighting)
    np.testing.assert_allclose(result.auc, auc, rtol=1e-12)
    np.testing.assert_allclose(result.gauc, gauc, rtol=1e-12)
    fused = FUSION.fuse(FUSION.transform(scores), WEIGHTS[:1])[0][traffic.shown]
    assert len(np.unique(fused)) < len(fused) / 5  # the test is about ties
    np.testing.assert_allclose(result.auc_combined, (auc[:, 0] + 3 * auc[:, 1]) / 4)
    np.testing.assert_allclose(result.gauc_combined, (gauc[:, 0] + 3 * gauc[:, 1]) / 4)
    assert isinstance(result, OrderingScores) and result.kind == "ordering score"
    assert (result.gauc_requests > 0).all() and len(result) == len(WEIGHTS)


def test_a_task_without_positives_has_no_auc_and_drops_out_of_the_combination() -> None:
    import dataclasses

    traffic, _, scores = make_toy(5, n_requests=80)
    silent = dataclasses.replace(traffic, labels={
        "click": traffic.labels["click"], "like": np.zeros_like(traffic.labels["like"])})
    result = AUCProxy(SlateFeedback.from_traffic(silent), scores, TASKS, FUSION).evaluate(
        WEIGHTS[:2], {"click": 1.0, "like": 3.0})
    assert np.isnan(result.auc[:, 1]).all() and np.isnan(result.gauc[:, 1]).all()
    np.testing.assert_allclose(result.auc_combined, result.auc[:, 0])
    assert result.gauc_requests[1] == 0


@pytest.mark.parametrize(("kwargs", "objective", "pattern"), [
    ({"gauc_weighting": "users"}, {"click": 1.0}, "gauc_weighting"),
    ({"chunk_requests": 0}, {"click": 1.0}, "chunk_requests"),
    ({}, {"cart": 1.0}, "unknown task"),
    ({}, {"click": -1.0}, ">= 0"),
    ({}, {"click": 0.0}, "not all 0"),
])
def test_bad_settings_are_refused_with_what_is_valid(kwargs, objective, pattern) -> None:
    traffic, _, scores = make_toy(0, n_requests=20)
    with pytest.raises(ValueError, match=pattern):
        AUCProxy(SlateFeedback.from_traffic(traffic), scores, TASKS, FUSION,
                 **kwargs).evaluate(WEIGHTS, objective)


def test_scores_of_the_wrong_shape_are_refused() -> None:
    traffic, _, scores = make_toy(0, n_requests=20)
    with pytest.raises(ValueError, match=r"\[R, N, S\]"):
        AUCProxy(SlateFeedback.from_traffic(traffic), scores[:, :, :1], TASKS, FUSION)


def test_on_a_world_each_task_s_auc_orders_vectors_by_that_task_better_than_chance() -> None:
    """Per task, the fused score's AUC orders vectors by the task's true value.

    The combination with the objective's weights need not: on this marketplace (seed
    21) the combined AUC orders 40 vectors by the objective at tau -0.38, because it
    weighs AUCs by the objective's weights, blind to how much of the value each task
    holds (bench/ordering_quality.py measures it on both worlds).
    """
    log = worldkit.make_log(21, 4000)
    weights = worldkit.random_weights(np.random.default_rng(0), 40)
    truth = log.true_values(weights)  # [P, T]
    feedback = SlateFeedback.from_traffic(log.traffic, worldkit.TASKS)
    result = AUCProxy(feedback, log.scores, worldkit.TASKS, FUSION).evaluate(
        weights, worldkit.OBJECTIVE_WEIGHTS)
    # 40 vectors: tau has a null sd of ~0.11, so 0.3 is well above chance
    for t in range(len(worldkit.TASKS)):
        assert stats.kendalltau(result.auc[:, t], truth[:, t]).statistic > 0.3
        assert stats.kendalltau(result.gauc[:, t], truth[:, t]).statistic > 0.3
