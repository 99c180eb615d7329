"""Per-segment search, personalised estimates, the guard and the segment table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from simulator.estimators import SNIPS
from simulator.policies import top_k
from simulator.worlds import MarketplaceConfig, MarketplaceWorld
from tests.worldkit import FUSION, OBJECTIVE_WEIGHTS, SPACE, WorldLog, make_log
from tuner.evaluation.objective import FusionObjective
from tuner.evaluation.search_data import split_log
from tuner.picks.export import ExportedWeights
from tuner.segments import (
    Clusters,
    Segmentation,
    SegmentedReplay,
    SegmentTable,
    guard,
    merge_small,
    request_feature,
    request_features,
    run_segmented,
    segment_picks,
    stored_segmentation,
)
from tuner.strategies import CEM, CEMConfig
from tuner.study import SearchSpec, create_or_load_study, run_rounds

CONTROL = np.array([1.0, 0.5, 0.5])
OBJ = np.array([OBJECTIVE_WEIGHTS[t] for t in ("click", "conversion", "like")])


def _personalised_slates(log: WorldLog, weights: np.ndarray) -> np.ndarray:
    """``[R, K]`` top-K slates ranking each request by its own weights ``[R, S]``."""
    fused = (FUSION.transform(log.scores) * weights[:, None, :]).sum(axis=-1)  # [R, N]
    return top_k(fused[None], log.traffic.slate_size)[0]


def _exposure(log: WorldLog, slates: np.ndarray) -> np.ndarray:
    """``[1, R, N]`` exposure of deterministic slates."""
    r, n = log.traffic.n_requests, log.traffic.n_candidates
    out = np.zeros((1, r, n))
    out[0, np.arange(r)[:, None], slates] = log.world.examination
    return out


def _hetero_log(seed: int, n: int, h: float) -> WorldLog:
    world = MarketplaceWorld(MarketplaceConfig(n_requests=n, seed=seed, taste_heterogeneity=h))
    traffic = world.generate()
    truth = world.true_probabilities(traffic)
    z = np.random.default_rng([seed, 7]).standard_normal(truth.shape)
    return WorldLog(world, traffic, np.clip(truth * np.exp(0.3 * z), 1e-6, 1.0))


def _cem(replay: object, gens: int, seed: int = 0) -> np.ndarray:
    cem = CEM(SPACE, CEMConfig(population=16), seed=seed, init_mean=CONTROL)
    for g in range(gens):
        X = cem.ask(g)
        est = replay.evaluate(SPACE.matrix_to_weights(X), OBJECTIVE_WEIGHTS)  # type: ignore
        cem.tell(g, X, est.value[:, -1])
    return SPACE.matrix_to_weights(cem.pick()[None])[0]


# ----------------------------------------------------------------- segmentation
def test_quantile_edges_and_assignment() -> None:
    seg = Segmentation.from_quantiles("f", np.array([0.0, 0, 0, 1, 1, 2, 2, 3]), 4)
    assert seg.edges == (1.0, 2.0)  # repeated quantiles collapse, none at the minimum
    assert seg.assign(np.array([-5.0, 0.5, 1.0, 2.5, 9.0])).tolist() == [0, 0, 1, 2, 2]
    assert Segmentation.from_dict(json.loads(json.dumps(seg.to_dict()))) == seg
    with pytest.raises(ValueError, match="strictly increasing"):
        Segmentation("f", (2.0, 1.0))


def test_request_feature_refuses_item_features_and_unknown_names() -> None:
    log = make_log(0, 50)
    assert request_feature(log.traffic, "feature_user_activity").shape == (50,)
    with pytest.raises(ValueError, match="differs between the candidates"):
        request_feature(log.traffic, "item_price")
    with pytest.raises(ValueError, match="no such feature"):
        request_feature(log.traffic, "nope")


def test_small_segments_are_merged_then_refused() -> None:
    counts = {(1.0, 2.0, 3.0): [500, 50, 400, 300]}

    def events(seg: Segmentation) -> list[float]:
        if seg.edges in counts:
            return counts[seg.edges]
        sizes = {(2.0, 3.0): [550, 400, 300], (1.0, 3.0): [500, 450, 300]}
        return sizes[seg.edges]

    merged, notes = merge_small(Segmentation("f", (1.0, 2.0, 3.0)), events, 100)
    assert merged.edges == (1.0, 3.0)  # the 50 joined its smaller neighbour, the 400
    assert len(notes) == 1 and "50 expected events" in notes[0]
    with pytest.raises(ValueError, match="too little traffic"):
        merge_small(Segmentation("f", ()), lambda s: [10.0], 100)


def test_small_segments_merge_on_a_real_log() -> None:
    log = make_log(0, 800)
    replay = log.replay(SNIPS())
    x = request_feature(log.traffic, "user_activity")

    def events(seg: Segmentation) -> np.ndarray:
        sr = SegmentedReplay(replay, seg.assign(x), seg.n_segments)
        return sr.expected_events(CONTROL, OBJECTIVE_WEIGHTS)

    fine = Segmentation.from_quantiles("user_activity", x, 16)
    merged, notes = merge_small(fine, events, 10.0)
    assert notes and 1 < merged.n_segments < fine.n_segments
    assert (events(merged) >= 10).all()


# ------------------------------------------------------------ search in studies
@pytest.mark.parametrize("kind", ["quantiles", "kmeans"])
def test_one_segment_search_equals_the_global_search(tmp_path: Path, kind: str) -> None:
    log = make_log(3, 1200)
    replay = log.replay(SNIPS())
    config = CEMConfig(population=8)
    url = f"sqlite:///{tmp_path / 's.db'}"
    spec = SearchSpec.new(SPACE, config, 4, CONTROL)
    glob = create_or_load_study(url, "g", SPACE, config, 4, init_mean=CONTROL)
    run_rounds(glob, spec, FusionObjective(replay, OBJECTIVE_WEIGHTS), until=2, progress=False)
    one: Segmentation | Clusters = Segmentation("user_activity", ())
    if kind == "kmeans":
        names = ("user_activity", "user_segment")
        one = Clusters.from_kmeans(names, request_features(log.traffic, names), 1, 0)[0]
    sr = SegmentedReplay(replay, one.assign_log(log.traffic), 1)
    make = lambda rep: FusionObjective(rep, OBJECTIVE_WEIGHTS)  # noqa: E731
    (child,) = run_segmented(url, "p", spec, one, sr, make, until=2)
    assert [t.value for t in child.trials] == [t.value for t in glob.trials]
    assert [t.params for t in child.trials] == [t.params for t in glob.trials]
    parent = create_or_load_study(url, "p", create=False)
    assert stored_segmentation(parent) == one
    # resumable: asking again for the same number of rounds writes nothing new
    run_segmented(url, "p", spec, one, sr, make, until=2)
    assert len(create_or_load_study(url, "p/segment-0", create=False).trials) == 16
    assert segment_picks(url, "p", 1).shape == (1, 3)


def test_segmented_search_refuses_another_segmentation(tmp_path: Path) -> None:
    log = make_log(3, 600)
    replay = log.replay(SNIPS())
    x = request_feature(log.traffic, "user_activity")
    url = f"sqlite:///{tmp_path / 's.db'}"
    spec = SearchSpec.new(SPACE, CEMConfig(population=4), 0, CONTROL)
    make = lambda rep: FusionObjective(rep, OBJECTIVE_WEIGHTS)  # noqa: E731
    seg = Segmentation.from_quantiles("user_activity", x, 2)
    run_segmented(url, "p", spec, seg, SegmentedReplay(replay, seg.assign(x), 2), make, until=1)
    other = Segmentation("user_activity", (seg.edges[0] + 0.1,))
    with pytest.raises(ValueError, match="segments"):
        run_segmented(url, "p", spec, other, SegmentedReplay(replay, other.assign(x), 2),
                      make, until=1)


# ------------------------------------------------------------------------ truth
def test_personalised_truth_matches_rollouts_and_the_stratified_estimate() -> None:
    log = _hetero_log(1, 3000, 1.0)
    x = request_feature(log.traffic, "user_activity")
    seg = Segmentation.from_quantiles("user_activity", x, 3)
    rows = np.array([[1.0, 2.0, 0.2], [1.0, 0.5, 0.5], [1.0, 0.1, 3.0]])
    slates = _personalised_slates(log, rows[seg.assign(x)])
    truth = log.world.true_value(log.traffic, _exposure(log, slates))[0]  # [3]
    draws = np.stack([log.world.rollout(log.traffic, slates, seed=s).sum(axis=1).mean(axis=0)
                      for s in range(40)])  # [40, 3]
    se = draws.std(axis=0, ddof=1) / np.sqrt(len(draws))
    assert (np.abs(draws.mean(axis=0) - truth) < 4 * se + 1e-9).all()
    # the same policy through the segment replays: stratified per-segment truths add up
    sr = SegmentedReplay(log.replay(SNIPS()), seg.assign(x), seg.n_segments)
    parts = [log.part(log.traffic.take(idx)).true_values(rows[s][None])[0] * idx.size
             for s, idx in enumerate(sr.requests)]
    np.testing.assert_allclose(np.sum(parts, axis=0) / 3000, truth, rtol=1e-7)  # float32 fuse


def test_taste_heterogeneity_is_off_by_default() -> None:
    a = MarketplaceWorld(MarketplaceConfig(n_requests=100))
    b = MarketplaceWorld(MarketplaceConfig(n_requests=100, taste_heterogeneity=0.0))
    t = a.generate()
    np.testing.assert_array_equal(a.expected_rewards(t), b.expected_rewards(t))
    with pytest.raises(ValueError, match="taste_heterogeneity"):
        MarketplaceConfig(taste_heterogeneity=-1.0)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_opposite_tastes_per_segment_beats_global_in_truth_and_held_out(seed: int) -> None:
    # the search needs few requests, a held-out interval narrow enough to see the lift many
    log = _hetero_log(seed, 60000, 3.0)
    parts = split_log(log.traffic, {"search": 0.2, "holdout": 0.8}, seed)
    search, hold = log.part(parts["search"]), log.part(parts["holdout"])
    rs = search.replay(SNIPS())
    x = request_feature(search.traffic, "user_activity")
    seg = Segmentation.from_quantiles("user_activity", x, 2)
    sr = SegmentedReplay(rs, seg.assign(x), 2)
    w_global = _cem(rs, 6)
    rows = np.stack([_cem(sr.segment(s), 6) for s in range(2)])
    # active users like more: their segment's like weight is the larger
    assert rows[0, 2] < rows[1, 2]
    xh = request_feature(hold.traffic, "user_activity")
    sh = seg.assign(xh)
    true_p = hold.world.true_value(hold.traffic, _exposure(
        hold, _personalised_slates(hold, rows[sh])))[0] @ OBJ
    true_g = hold.true_values(w_global[None])[0] @ OBJ
    assert true_p > true_g
    est = SegmentedReplay(hold.replay(SNIPS()), sh, 2).personalised(
        [rows, np.tile(w_global, (2, 1))], OBJECTIVE_WEIGHTS, np.array([[1.0, -1.0]]))
    decision = guard(est)
    assert decision.personalised, decision.reason
    assert decision.lift["low"] <= true_p - true_g <= decision.lift["high"]


# ----------------------------------------------------------------------- export
def _base(weights: np.ndarray) -> ExportedWeights:
    return ExportedWeights("multiplicative", ("click", "conversion", "like"), tuple(weights),
                           {"value": 1.0, "low": 0.9, "high": 1.1, "split": "holdout"},
                           "strategy", "p", None, "d", "m")


def test_exported_table_reproduces_the_weights_on_held_out_rows() -> None:
    log = make_log(2, 400)
    x = request_feature(log.traffic, "user_activity")
    seg = Segmentation.from_quantiles("user_activity", x, 4)
    rows = np.array([[1.0, 0.1 * i, 2.0 - 0.3 * i] for i in range(4)])
    table = SegmentTable(seg, ("click", "conversion", "like"), rows, CONTROL)
    text = json.dumps(table.to_dict(_base(CONTROL)))
    back = SegmentTable.from_dict(json.loads(text))
    fresh = request_feature(make_log(5, 300).traffic, "user_activity")
    np.testing.assert_array_equal(back.weights_for(fresh), rows[seg.assign(fresh)])
    # what a server without Python does: compare with the edges, row by row
    data = json.loads(text)["segments"]
    for value in fresh[:50]:
        row = next(r for r in data["rows"] if (r["low"] is None or r["low"] <= value)
                   and (r["high"] is None or value < r["high"]))
        np.testing.assert_array_equal(list(row["weights"].values()),
                                      back.weights_for(np.array([value]))[0])
    # a reader of schema 1.0 still gets the default (global) row; the schema takes the file
    assert ExportedWeights.from_json(text).weights == tuple(CONTROL)
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((Path(__file__).parents[2] / "tuner" / "picks" /
                         "weights.schema.json").read_text())
    jsonschema.validate(json.loads(text), schema)


def test_not_significant_exports_the_global_pick() -> None:
    log = make_log(4, 2000)
    x = request_feature(log.traffic, "user_activity")
    seg = Segmentation.from_quantiles("user_activity", x, 2)
    sr = SegmentedReplay(log.replay(SNIPS()), seg.assign(x), 2)
    near = np.array([[1.0, 0.5, 0.5], [1.0, 0.52, 0.5]])
    est = sr.personalised([near, np.tile(CONTROL, (2, 1))], OBJECTIVE_WEIGHTS,
                          np.array([[1.0, -1.0]]))
    decision = guard(est)
    assert not decision.personalised and "exporting the global pick" in decision.reason
    table = SegmentTable(seg, ("click", "conversion", "like"), near, CONTROL, decision)
    out = table.to_dict(_base(CONTROL))
    assert out["segments"]["personalised"] is False and out["segments"]["rows"] == []
    back = SegmentTable.from_dict(out)
    np.testing.assert_array_equal(back.weights_for(x[:5]), np.tile(CONTROL, (5, 1)))


@pytest.mark.slow
def test_kuairand_personalised_truth_matches_rollouts() -> None:
    """The KuaiRand world, tilted by taste_heterogeneity, values per-request weights exactly."""
    from simulator.worlds import KuaiRandConfig, KuaiRandWorld, load_response_model
    from simulator.worlds._kuairand_fit import resolve_data_path

    try:
        resolve_data_path()
    except FileNotFoundError as err:
        pytest.skip(f"KuaiRand-Pure data absent: {err}")
    fit = load_response_model()
    plain = KuaiRandWorld(KuaiRandConfig(n_requests=2000, seed=3), fit=fit)
    world = KuaiRandWorld(KuaiRandConfig(n_requests=2000, seed=3, taste_heterogeneity=1.0),
                          fit=fit)
    traffic = world.generate()
    p = world.true_probabilities(traffic)
    assert not np.allclose(p, plain.true_probabilities(traffic))
    x = request_feature(traffic, "user_active_degree")
    seg = Segmentation.from_quantiles("user_active_degree", x, 3)
    rows = np.array([[1.0, 2.0, 0.2, 1.0], [1.0, 0.5, 0.5, 0.5], [1.0, 0.1, 3.0, 1.0]])
    fused = (np.log(p) * rows[seg.assign(x)][:, None, :]).sum(axis=-1)  # [R, N]
    slates = top_k(fused[None], traffic.slate_size)[0]
    exposure = np.zeros((1, *fused.shape))
    exposure[0, np.arange(len(slates))[:, None], slates] = world.examination
    truth = world.true_value(traffic, exposure)[0]
    draws = np.stack([world.rollout(traffic, slates, seed=s).sum(axis=1).mean(axis=0)
                      for s in range(40)])
    se = draws.std(axis=0, ddof=1) / np.sqrt(len(draws))
    assert (np.abs(draws.mean(axis=0) - truth) < 4 * se + 1e-9).all()


def test_an_estimator_without_events_leaves_segments_and_says_so() -> None:
    seg = Segmentation("f", (1.0,))
    merged, notes = merge_small(seg, lambda s: [np.nan, np.nan], 100)
    assert merged == seg and "unchecked" in notes[0]


def test_a_segment_replay_keeps_its_requests_bootstrap_keys() -> None:
    import dataclasses

    from tuner.segments import sub_replay

    log = make_log(0, 300)
    replay = dataclasses.replace(log.replay(SNIPS()), request_ids=np.arange(300) * 7)
    sub = sub_replay(replay, np.array([5, 2, 9]))
    assert sub.request_ids is not None and sub.request_ids.tolist() == [14, 35, 63]
    np.testing.assert_array_equal(sub.scores, replay.scores[[2, 5, 9]])
