"""The effective number of label events behind an estimate (``RequestTerms.events``)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from simulator.estimators import (
    ESTIMATORS,
    IPS,
    SNIPS,
    ClippedIPS,
    Estimate,
    RequestTerms,
    SlateFeedback,
    make_estimator,
)
from simulator.fusion import MultiplicativeFusion
from simulator.intervals import NormalInterval
from simulator.policies import TopKPolicy
from simulator.replay import Replay, objective_matrix
from simulator.report import ab_report
from tests.simulator.toylog import TASKS, make_toy

WEIGHTS = np.array([[1.0, 0.0], [0.2, 1.0], [1.0, 1.0]])
FUSION = MultiplicativeFusion()
OBJECTIVE = {"click": 1.0, "like": 3.0}


def _exposure(traffic, scores) -> np.ndarray:
    fused = FUSION.fuse(FUSION.transform(scores), WEIGHTS)
    return TopKPolicy(traffic.slate_size).exposure(fused, traffic.examination)


def _hand_events(traffic, exposure, column, clip=math.inf) -> list[float]:
    """Kish ESS of ``w * (y @ column)`` over shown impressions, one loop per impression."""
    e0 = traffic.pscores @ traffic.examination
    labels = np.stack([traffic.labels[t] for t in TASKS], axis=-1)
    out = []
    for p in range(exposure.shape[0]):
        total, squares = 0.0, 0.0
        for r, n in zip(*np.nonzero(traffic.shown), strict=True):
            w = min(float(exposure[p, r, n]) / float(e0[r, n]), clip)
            x = w * float(labels[r, n] @ column)
            total += x
            squares += x * x
        out.append(total**2 / squares if squares > 0 else 0.0)
    return out


@pytest.mark.parametrize("estimator", [IPS(), SNIPS(), ClippedIPS(clip=2.0)],
                         ids=lambda e: e.name)
def test_events_equal_a_hand_computation(estimator) -> None:
    traffic, _, scores = make_toy(0, n_requests=150)
    exposure = _exposure(traffic, scores)
    terms = estimator.terms(SlateFeedback.from_traffic(traffic), exposure)
    combine = objective_matrix(TASKS, OBJECTIVE)  # click, like, click + 3 like
    clip = getattr(estimator, "clip", math.inf)
    expected = np.array([_hand_events(traffic, exposure, combine[:, m], clip)
                         for m in range(combine.shape[1])]).T
    np.testing.assert_allclose(terms.events(combine), expected, rtol=1e-5)


@pytest.mark.parametrize("estimator", [IPS(), ClippedIPS(clip=2.0)], ids=lambda e: e.name)
def test_expected_events_equal_a_hand_computation(estimator) -> None:
    # ess of the weights times m1^2 / m2 of the shown labels (for a binary task: its rate)
    traffic, _, scores = make_toy(0, n_requests=150)
    exposure = _exposure(traffic, scores)
    terms = estimator.terms(SlateFeedback.from_traffic(traffic), exposure)
    combine = objective_matrix(TASKS, OBJECTIVE)
    e0 = traffic.pscores @ traffic.examination
    shown = traffic.shown
    w = np.minimum(exposure / e0[None], getattr(estimator, "clip", math.inf))[:, shown]
    ess = w.sum(axis=1) ** 2 / (w**2).sum(axis=1)
    y = np.stack([traffic.labels[t] for t in TASKS], axis=-1)[shown] @ combine  # [n, M]
    share = y.mean(axis=0) ** 2 / (y**2).mean(axis=0)
    np.testing.assert_allclose(terms.expected_events(combine), ess[:, None] * share[None],
                               rtol=1e-5)


def test_events_of_the_logging_policy_under_ips_count_the_positive_labels() -> None:
    # w = 1 on every shown candidate: the events of a binary task are its positives
    traffic, _, _ = make_toy(1)
    logging_exposure = (traffic.pscores @ traffic.examination)[None].astype(np.float32)
    terms = IPS().terms(SlateFeedback.from_traffic(traffic), logging_exposure)
    counts = [traffic.labels[t].sum() for t in TASKS]
    np.testing.assert_allclose(terms.events(np.eye(len(TASKS)))[0], counts, rtol=1e-5)


def test_joined_chunks_give_the_events_of_the_whole_log() -> None:
    traffic, _, scores = make_toy(2)
    feedback = SlateFeedback.from_traffic(traffic)
    exposure = _exposure(traffic, scores)
    combine = objective_matrix(TASKS, OBJECTIVE)
    whole = SNIPS().terms(feedback, exposure).events(combine)
    cut = [0, 7, 190, traffic.n_requests]
    joined = RequestTerms.concatenate([
        SNIPS().terms(feedback.chunk(a, b), exposure[:, a:b])
        for a, b in zip(cut[:-1], cut[1:], strict=True)])
    np.testing.assert_allclose(joined.events(combine), whole, rtol=1e-6)
    expected = SNIPS().terms(feedback, exposure).expected_events(combine)
    np.testing.assert_allclose(joined.expected_events(combine), expected, rtol=1e-6)
    # a single chunk already differs from the whole: the join must add, not keep one
    first = SNIPS().terms(feedback.chunk(0, 190), exposure[:, :190])
    assert not np.allclose(first.events(combine), whole)
    assert not np.allclose(first.expected_events(combine), expected)
    # and the replay, whatever its chunks, reports the same (expected) events
    replays = [Replay(feedback, scores, TASKS, FUSION, TopKPolicy(3), SNIPS(), NormalInterval(),
                      chunk_requests=c).evaluate(WEIGHTS, OBJECTIVE) for c in (37, 10_000)]
    np.testing.assert_allclose(replays[0].events, replays[1].events, rtol=1e-6)
    np.testing.assert_allclose(replays[1].events, expected, rtol=1e-5)


def test_take_keeps_the_events_of_the_chosen_policies() -> None:
    traffic, _, scores = make_toy(3)
    terms = SNIPS().terms(SlateFeedback.from_traffic(traffic), _exposure(traffic, scores))
    combine = np.eye(len(TASKS))
    taken = terms.take(np.array([2, 0]))
    np.testing.assert_array_equal(taken.events(combine), terms.events(combine)[[2, 0]])
    np.testing.assert_array_equal(taken.expected_events(combine),
                                  terms.expected_events(combine)[[2, 0]])


def test_events_are_zero_when_a_task_has_no_positive_label() -> None:
    traffic, _, scores = make_toy(4)
    silent = dataclasses.replace(traffic, labels={
        "click": traffic.labels["click"], "like": np.zeros_like(traffic.labels["like"])})
    replay = Replay(SlateFeedback.from_traffic(silent), scores, TASKS, FUSION, TopKPolicy(3),
                    SNIPS(), NormalInterval())
    result = replay.evaluate(WEIGHTS, OBJECTIVE)
    like, click = result.metrics.index("like"), result.metrics.index("click")
    np.testing.assert_array_equal(result.events[:, like], 0.0)
    assert (result.events[:, click] > 10).all()
    assert result.estimate(0, "like").events == 0.0
    terms = replay.terms(WEIGHTS)
    np.testing.assert_array_equal(terms.events(np.eye(2))[:, like], 0.0)


@pytest.mark.parametrize("name", sorted(set(ESTIMATORS) - {"rips"}))
def test_every_weighted_estimator_reports_events_and_dm_none(name: str) -> None:
    traffic, _, scores = make_toy(5, n_requests=200)
    feedback = SlateFeedback.from_traffic(traffic, reward_model=scores)
    replay = Replay(feedback, scores, TASKS, FUSION, TopKPolicy(3), make_estimator(name),
                    NormalInterval())
    events = replay.evaluate(WEIGHTS, OBJECTIVE).events
    assert events is not None and events.shape == (len(WEIGHTS), 3)
    if name == "dm":  # no importance weights, so no events
        assert np.isnan(events).all()
    else:
        assert np.isfinite(events).all() and (events > 0).all()


def test_ab_report_rows_carry_events_and_the_lift_the_thinner_arm() -> None:
    traffic, _, scores = make_toy(6)
    replay = Replay(SlateFeedback.from_traffic(traffic), scores, TASKS, FUSION, TopKPolicy(3),
                    SNIPS(), NormalInterval())
    report = ab_report(replay, WEIGHTS[2], WEIGHTS[1], OBJECTIVE)
    expected = replay.evaluate(WEIGHTS[[2, 1]], OBJECTIVE).events
    for m, row in enumerate(report.rows):
        assert row.control.events == pytest.approx(expected[0, m])
        assert row.treatment.events == pytest.approx(expected[1, m])
        assert row.lift.events == pytest.approx(expected[:, m].min())


def test_an_estimate_built_without_events_reads_nan() -> None:
    assert math.isnan(Estimate(1.0, 0.9, 1.1, ess=50.0, n=100).events)
