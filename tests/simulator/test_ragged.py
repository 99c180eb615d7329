"""Ragged requests and shown-only propensities: policies, fusion, estimators, worlds.

A ragged log pads every request to the widest; padding must change nothing: a request
is valued as it would be in a log without padding, on the slots it shows.
"""

from __future__ import annotations

import numpy as np
import pytest

from simulator.estimators import (
    ESTIMATORS,
    IPS,
    SNIPS,
    MissingColumnsError,
    SlateFeedback,
    SlotDR,
    SlotIPS,
    SlotSNIPS,
    make_estimator,
)
from simulator.fusion import FUSIONS, make_fusion
from simulator.intervals import NormalInterval
from simulator.logs import LoggedTraffic
from simulator.policies import EpsilonGreedyTopK, TopKPolicy
from simulator.replay import Replay
from simulator.worlds import MarketplaceConfig, MarketplaceWorld
from tests import worldkit

NEG = -np.inf


def _ragged_fused() -> np.ndarray:
    """``[1, 3, 5]``: requests of 5, 2 and 1 candidates."""
    return np.array([[[0.3, 0.9, 0.1, 0.5, 0.7],
                      [0.2, 0.8, NEG, NEG, NEG],
                      [0.4, NEG, NEG, NEG, NEG]]])


def test_top_k_shows_what_a_short_request_has_and_never_padding() -> None:
    fused = _ragged_fused()
    np.testing.assert_array_equal(TopKPolicy(3).sample(fused, seed=0)[0],
                                  np.array([[1, 4, 3], [1, 0, -1], [0, -1, -1]]))
    exam = np.array([1.0, 0.5, 0.25])
    exposure = TopKPolicy(3).exposure(fused, exam)[0]
    np.testing.assert_allclose(exposure, np.array([[0, 1, 0, 0.25, 0.5], [0.5, 1, 0, 0, 0],
                                                   [1, 0, 0, 0, 0]]))


def test_epsilon_greedy_propensities_match_its_draws_on_ragged_requests() -> None:
    fused = _ragged_fused()[0]
    policy = EpsilonGreedyTopK(k=3, epsilon=0.4)
    ps = policy.pscores(fused)  # [3, 5, 3]
    np.testing.assert_allclose(ps.sum(axis=1), [[1, 1, 1], [1, 1, 0], [1, 0, 0]])
    assert (ps[1, 2:] == 0).all() and (ps[2, 1:] == 0).all()  # padding never shown
    draws = np.stack([policy.sample(fused, seed=s) for s in range(6000)])  # [S, 3, 3]
    empirical = np.zeros_like(ps)
    for j in range(3):
        for r in range(3):
            shown = draws[:, r, j]
            for n in range(5):
                empirical[r, n, j] = (shown == n).mean()
    np.testing.assert_allclose(empirical, ps, atol=0.02)
    exam = np.array([1.0, 0.6, 0.3])
    np.testing.assert_allclose(policy.exposure(fused[None], exam)[0], ps @ exam, atol=1e-6)
    curve = exam[None] * np.array([[1, 1, 0], [1, 1, 1], [1, 0, 0]])  # a curve per request
    np.testing.assert_allclose(policy.exposure(fused[None], curve)[0],
                               np.einsum("rnk,rk->rn", ps, curve), atol=1e-6)
    positions = np.array([[2, 0, -1, 1, -1], [1, 0, -1, -1, -1], [0, -1, -1, -1, -1]])
    at_slot = policy.logged_slot_probabilities(fused[None], positions)[0]
    want = np.where(positions >= 0, np.take_along_axis(
        ps, np.maximum(positions, 0)[..., None], axis=2)[..., 0], 0)
    np.testing.assert_allclose(at_slot, want)


@pytest.mark.parametrize("name", sorted(FUSIONS))
def test_fusion_ranks_a_padded_request_as_the_unpadded_one(name: str) -> None:
    fusion = make_fusion(name)
    rng = np.random.default_rng(0)
    scores = rng.uniform(0.01, 0.99, (1, 6, 2))
    valid = np.array([[True, True, True, True, False, False]])
    padded = scores.copy()
    padded[0, 4:] = 0.999  # padding scores that would rank first
    w = np.array([[1.0, 0.5]])
    fused = fusion.fuse(fusion.prepare(padded, valid), w, valid)[0, 0]
    alone = fusion.fuse(fusion.transform(scores[:, :4]), w)[0, 0]
    np.testing.assert_allclose(fused[:4], alone, rtol=1e-6)
    assert np.isneginf(fused[4:]).all()


def _trimmed(traffic: LoggedTraffic, width: int) -> LoggedTraffic:
    """The requests of ``traffic`` (all of ``width`` candidates) without their padding."""
    cut = slice(0, width)
    return LoggedTraffic(
        request_ids=traffic.request_ids, user_ids=traffic.user_ids,
        item_ids=traffic.item_ids[:, cut], positions=traffic.positions[:, cut],
        pscores=None if traffic.pscores is None else traffic.pscores[:, cut],
        labels={k: v[:, cut] for k, v in traffic.labels.items()},
        features={k: v[:, cut] for k, v in traffic.features.items()},
        examination=traffic.examination,
        prefix_pscores=None if traffic.prefix_pscores is None else traffic.prefix_pscores[:, cut])


@pytest.mark.parametrize("name", ["ips", "dr", "slot_ips", "slot_dr", "rips", "pi", "dm"])
def test_padding_changes_no_request_s_terms(name: str) -> None:
    """Each request's terms in a ragged log equal those of a log of its width, unpadded."""
    log = worldkit.make_log(3, 600, candidates="3:8")
    traffic, scores = log.traffic, log.scores
    weights = worldkit.random_weights(np.random.default_rng(0), 3)
    estimator = make_estimator(name)
    terms = log.replay(estimator).terms(weights).numerator  # [P, R, T]
    counts = traffic.candidate_counts
    for width in np.unique(counts)[[0, -1]]:  # the narrowest and the widest
        rows = np.flatnonzero(counts == width)
        part = _trimmed(traffic.take(rows), int(width))
        assert part.valid is None
        sub = worldkit.WorldLog(log.world, part, scores[rows][:, :width])
        alone = sub.replay(estimator).terms(weights).numerator
        np.testing.assert_allclose(terms[:, rows], alone, rtol=2e-5, atol=1e-7)


def test_every_estimator_runs_on_a_ragged_log_near_the_truth() -> None:
    """One ragged log (3..12 candidates, 2..5 slots seen): each unbiased estimator within
    4.5 of its normal standard errors of the exact value (tests/test_ground_truth.py
    checks the bias over 40 logs)."""
    log = worldkit.make_log(11, 4000, candidates="3:12", shown_slots="2:5")
    weights = worldkit.random_weights(np.random.default_rng(1), 2)
    truth = log.true_objective(weights)
    for name in ESTIMATORS:
        result = log.replay(make_estimator(name), NormalInterval()).evaluate(
            weights, worldkit.OBJECTIVE_WEIGHTS)
        value, low, high = (a[:, -1] for a in (result.value, result.low, result.high))
        assert np.isfinite(value).all() and (low <= value).all() and (value <= high).all()
        if name in ("ips", "iips", "snips", "dr", "sndr", "slot_ips", "slot_snips", "slot_dr",
                    "pi"):
            se = (high - low) / (2 * 1.96)
            assert (np.abs(value - truth) < 4.5 * se).all(), (name, (value - truth) / se)


def test_a_shown_only_log_gives_the_slot_estimators_the_same_numbers() -> None:
    log = worldkit.make_log(5, 1500, candidates="5:20", shown_slots="1:5")
    weights = worldkit.random_weights(np.random.default_rng(2), 4)
    only = worldkit.WorldLog(log.world, log.traffic.shown_only(), log.scores)
    assert only.traffic.pscores is None and only.traffic.slate_size == 5
    for estimator in (SlotIPS(), SlotSNIPS(), SlotDR(), make_estimator("dm")):
        np.testing.assert_allclose(log.estimate(log.replay(estimator), weights),
                                   only.estimate(only.replay(estimator), weights), rtol=1e-6)
    back = LoggedTraffic.from_columns(only.traffic.to_columns(), only.traffic.examination)
    assert back.fingerprint() == only.traffic.fingerprint()


@pytest.mark.parametrize("name", ["ips", "snips", "dr", "sndr", "switch", "switch_dr",
                                  "clipped_ips", "pooled_dr", "pi", "rips"])
def test_estimators_that_need_more_refuse_a_shown_only_log_in_one_line(name: str) -> None:
    log = worldkit.make_log(5, 200, candidates="5:20")
    only = worldkit.WorldLog(log.world, log.traffic.shown_only(), log.scores)
    with pytest.raises(MissingColumnsError) as err:
        only.replay(make_estimator(name))
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"the {name} estimator needs the log's ")
    column = "prefix_pscore column" if name == "rips" else "pscore_0..pscore_<K-1> columns"
    assert column in message
    assert message.endswith("estimators that work with it: dm, slot_dr, slot_ips, slot_snips")


def test_terms_of_a_direct_call_also_refuse() -> None:
    log = worldkit.make_log(5, 100)
    fb = SlateFeedback.from_traffic(log.traffic.shown_only(), worldkit.TASKS)
    assert fb.logging_exposure is None
    exposure = log.exposure(np.array([[1.0, 1.0, 1.0]]))
    for estimator in (IPS(), SNIPS()):
        with pytest.raises(MissingColumnsError, match=r"needs the log's pscore_0"):
            estimator.terms(fb, exposure)


def test_world_chunks_are_seeded_numbered_and_ragged() -> None:
    world = MarketplaceWorld(MarketplaceConfig(candidates="10:40", shown_slots="3:5"))
    a = world.generate_chunk(300, start_request_id=5000, seed=1)
    again = world.generate_chunk(300, start_request_id=5000, seed=1)
    other = world.generate_chunk(300, start_request_id=5300, seed=1)
    assert a.fingerprint() == again.fingerprint() != other.fingerprint()
    assert a.request_ids.tolist() == list(range(5000, 5300))
    counts, shown = a.candidate_counts, a.shown.sum(axis=1)
    assert counts.min() >= 10 and counts.max() <= 40 and len(np.unique(counts)) > 10
    assert shown.min() >= 3 and shown.max() <= 5
    whole = LoggedTraffic.concatenate([a, other])  # padded to the wider chunk
    assert whole.n_requests == 600 and whole.valid is not None
    # the truth is a mean over requests: the chunks' truths weighted by their sizes
    policy = TopKPolicy(5)

    def value(t: LoggedTraffic) -> np.ndarray:  # ranked by the true click probability
        p = world.true_probabilities(t)
        assert t.valid is not None
        return world.policy_value(t, policy, np.log(np.where(t.valid, p[..., 0], 1.0))[None])
    np.testing.assert_allclose(value(whole), (value(a) + value(other)) / 2, rtol=1e-10)


def test_a_dense_world_is_untouched_by_the_ragged_options() -> None:
    base = MarketplaceWorld(MarketplaceConfig(n_requests=300, seed=2)).generate()
    also = MarketplaceWorld(MarketplaceConfig(n_requests=300, seed=2, candidates=None)).generate()
    assert base.fingerprint() == also.fingerprint() and base.valid is None


def test_replay_of_a_ragged_log_is_the_same_in_any_chunks() -> None:
    log = worldkit.make_log(8, 900, candidates="2:9", shown_slots="1:4")
    fb = SlateFeedback.from_traffic(log.traffic, worldkit.TASKS, reward_model=log.scores)
    weights = worldkit.random_weights(np.random.default_rng(3), 5)
    out = [Replay(fb, log.scores, worldkit.TASKS, worldkit.FUSION, TopKPolicy(5), SNIPS(),
                  chunk_requests=c).evaluate(weights).value for c in (900, 128)]
    np.testing.assert_allclose(out[0], out[1], rtol=1e-6)


def test_the_ab_report_of_a_ragged_log_pairs_its_arms() -> None:
    from simulator.report import ab_report

    log = worldkit.make_log(9, 800, candidates="3:12", shown_slots="2:5")
    control, treatment = np.array([1.0, 0.5, 0.5]), np.array([1.0, 0.5, 2.0])
    report = ab_report(log.replay(SNIPS()), control, treatment, worldkit.OBJECTIVE_WEIGHTS)
    row = report.row("objective")
    assert row.lift.value == pytest.approx(row.treatment.value - row.control.value)
    assert row.lift.low <= row.lift.value <= row.lift.high
    truth = log.true_objective(np.stack([control, treatment]))
    assert row.control.low - 0.5 < truth[0] < row.control.high + 0.5
