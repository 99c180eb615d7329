"""The synthetic marketplace: seeding, validity, ground truth against Monte Carlo."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from simulator.logs import LoggedTraffic
from simulator.worlds import BaseWorld, MarketplaceConfig, MarketplaceWorld

OBJECTIVE = np.array([1.0, 10.0, 5.0])  # clicks + 10 conversions + 5 likes


def _small(**kwargs: Any) -> MarketplaceWorld:
    return MarketplaceWorld(MarketplaceConfig(**{"n_requests": 500, **kwargs}))


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """``[R, K]`` indices of the ``k`` highest scores of each row, best first."""
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def _exposure(slates: np.ndarray, n: int, examination: np.ndarray) -> np.ndarray:
    """``[1, R, N]`` exposure of a deterministic policy showing ``slates`` ``[R, K]``."""
    r = slates.shape[0]
    exposure = np.zeros((1, r, n))
    exposure[0, np.arange(r)[:, None], slates] = examination
    return exposure


def _fused_slates(world: MarketplaceWorld, traffic: LoggedTraffic, weights: Any) -> np.ndarray:
    """Top-K by ``sum_k w_k log p_k`` of the true ``(r_c, r_v, r_l)``."""
    scores = np.log(world.true_probabilities(traffic)) @ np.asarray(weights, dtype=np.float64)
    return _top_k(scores, world.config.slate_size)


def test_is_a_world() -> None:
    world = _small()
    assert isinstance(world, BaseWorld)
    assert world.tasks == ("click", "conversion", "like")


def test_same_seed_same_traffic_other_seed_other_traffic() -> None:
    a = _small(seed=3).generate()
    b = _small(seed=3).generate()
    c = _small(seed=4).generate()
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != c.fingerprint()


def test_traffic_shape_and_content() -> None:
    world = _small(n_requests=300, n_candidates=12, slate_size=4)
    t = world.generate()
    assert (t.n_requests, t.n_candidates, t.slate_size) == (300, 12, 4)
    assert t.tasks == world.tasks
    np.testing.assert_array_equal(t.request_ids, np.arange(300))
    np.testing.assert_array_equal(t.examination, world.examination)
    # Candidates of a request are distinct items.
    s = np.sort(t.item_ids, axis=1)
    assert not (s[:, 1:] == s[:, :-1]).any()
    assert set(t.features) == {
        "user_segment", "user_activity", "item_category", "item_price", "item_quality"
    }
    # Request-level features are constant along a request.
    for name in ("user_segment", "user_activity"):
        assert (t.features[name] == t.features[name][:, :1]).all()
    assert (t.features["item_price"] > 0).all()
    # Not-shown candidates carry no label; conversions only follow clicks.
    for lab in t.labels.values():
        assert (lab[~t.shown] == 0).all()
    assert (t.labels["conversion"] <= t.labels["click"]).all()


def test_examination_curve() -> None:
    world = _small(slate_size=6, examination_eta=0.5)
    np.testing.assert_allclose(world.examination, 1.0 / np.sqrt(1.0 + np.arange(6)))
    assert world.examination[0] == 1.0


def test_round_trips_through_parquet_and_validates(tmp_path: Path) -> None:
    traffic = _small(n_requests=200).generate()
    path = traffic.write(tmp_path / "logs.parquet")
    back = LoggedTraffic.read(path)  # read validates every column
    assert back.fingerprint() == traffic.fingerprint()
    assert back.examination is not None
    np.testing.assert_array_equal(back.examination, traffic.examination)


def test_pscores_are_the_epsilon_greedy_propensities() -> None:
    eps = 0.3
    world = _small(n_requests=4000, epsilon=eps)
    t = world.generate()
    n, k = t.n_candidates, t.slate_size
    # Each slot holds the deterministic top-K candidate with 1 - eps + eps / N, others eps / N.
    top = t.pscores.max(axis=1)  # [R, K]
    np.testing.assert_allclose(top, 1 - eps + eps / n)
    np.testing.assert_allclose(np.sort(t.pscores, axis=1)[:, :-1], eps / n)
    # The logged slate is the deterministic one in a fraction 1 - eps (+ negligible chance).
    det = np.argmax(t.pscores, axis=1)  # [R, K]
    logged = np.argsort(np.where(t.shown, t.positions, k), axis=1)[:, :k]
    exploit = (det == logged).all(axis=1).mean()
    se = np.sqrt(eps * (1 - eps) / t.n_requests)
    assert abs(exploit - (1 - eps)) < 4 * se
    np.testing.assert_allclose(world.logging_exposure(t), t.pscores @ world.examination)


def test_true_value_matches_rollout_monte_carlo() -> None:
    world = _small(n_requests=1000, seed=5)
    traffic = world.generate()
    slates = _fused_slates(world, traffic, (1.0, 0.5, 2.0))
    truth = world.true_value(
        traffic, _exposure(slates, traffic.n_candidates, world.examination)
    )[0]
    per_seed = np.stack([world.rollout(traffic, slates, seed=s).sum(axis=1).mean(axis=0)
                         for s in range(60)])  # [S, T] mean label sum per request
    mean = per_seed.mean(axis=0)
    se = per_seed.std(axis=0, ddof=1) / np.sqrt(len(per_seed))
    assert (se > 0).all()
    assert (np.abs(mean - truth) < 4 * se).all(), (mean, truth, se)


def test_rollout_is_seeded() -> None:
    world = _small(n_requests=300)
    traffic = world.generate()
    slates = _fused_slates(world, traffic, (1.0, 1.0, 1.0))
    a = world.rollout(traffic, slates, seed=1)
    assert a.shape == (300, world.config.slate_size, 3)
    np.testing.assert_array_equal(a, world.rollout(traffic, slates, seed=1))
    assert not np.array_equal(a, world.rollout(traffic, slates, seed=2))


def test_logged_labels_match_true_value_of_logging_policy() -> None:
    world = _small(n_requests=20000, seed=2)
    traffic = world.generate()
    truth = world.true_value(traffic, world.logging_exposure(traffic)[None])[0]
    sums = traffic.label_matrix(world.tasks).sum(axis=1)  # [R, T]
    se = sums.std(axis=0, ddof=1) / np.sqrt(len(sums))
    assert (np.abs(sums.mean(axis=0) - truth) < 4 * se).all(), (sums.mean(axis=0), truth, se)


def test_true_value_is_exposure_times_expected_rewards() -> None:
    world = _small(n_requests=50)
    traffic = world.generate()
    exposure = np.random.default_rng(0).random((4, 50, traffic.n_candidates))
    rewards = world.expected_rewards(traffic)
    expected = np.einsum("prn,rnt->pt", exposure, rewards) / 50
    np.testing.assert_allclose(world.true_value(traffic, exposure), expected, rtol=1e-12)
    p = world.true_probabilities(traffic)
    np.testing.assert_allclose(rewards[..., 1], p[..., 0] * p[..., 1])
    with pytest.raises(ValueError, match=r"exposure must have shape \[P, R, N\]"):
        world.true_value(traffic, exposure[0])


def test_default_world_rates_are_realistic() -> None:
    t = MarketplaceWorld(MarketplaceConfig(n_requests=20000)).generate()
    top = t.positions == 0
    click = t.labels["click"][top].mean()
    conversion = t.labels["conversion"][top].sum() / t.labels["click"][top].sum()
    like = t.labels["like"][top].mean()
    assert 0.15 <= click <= 0.35
    assert 0.05 <= conversion <= 0.2
    assert 0.03 <= like <= 0.1


def test_tuning_problem_is_non_trivial() -> None:
    """Some fusion weights beat the logging weights clearly on the true objective."""
    world = MarketplaceWorld(MarketplaceConfig(n_requests=5000))
    traffic = world.generate()

    def objective(weights: tuple[float, ...]) -> float:
        slates = _fused_slates(world, traffic, weights)
        exposure = _exposure(slates, traffic.n_candidates, world.examination)
        return float(world.true_value(traffic, exposure)[0] @ OBJECTIVE)

    logging = objective(world.config.logging_weights)
    better = objective((1.0, 0.5, 2.0))
    assert better > 1.05 * logging, (better, logging)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"slate_size": 30}, r"slate_size must be an integer in \[1, n_candidates=20\]"),
        ({"slate_size": 0}, r"slate_size"),
        ({"epsilon": 0.0}, r"epsilon must be a number in \(0, 1\]"),
        ({"epsilon": 1.5}, r"epsilon"),
        ({"logging_weights": (1.0, 0.5)}, r"logging_weights must be a tuple of 3"),
        ({"logging_weights": (1.0, float("nan"), 0.5)}, r"logging_weights"),
        ({"n_candidates": 2000}, r"n_candidates must be an integer in \[1, n_items=1000\]"),
        ({"n_requests": 0}, r"n_requests must be an integer >= 1"),
        ({"n_users": 2.5}, r"n_users"),
        ({"production_noise": -1.0}, r"production_noise must be a finite number >= 0"),
        ({"examination_eta": float("inf")}, r"examination_eta"),
        ({"seed": -1}, r"seed must be an integer >= 0"),
    ],
)
def test_config_validation_names_the_field(kwargs: dict[str, Any], pattern: str) -> None:
    with pytest.raises(ValueError, match=r"MarketplaceConfig\." + pattern):
        MarketplaceConfig(**kwargs)


def test_epsilon_one_is_valid() -> None:
    t = _small(n_requests=100, epsilon=1.0).generate()
    np.testing.assert_allclose(t.pscores, 1.0 / t.n_candidates)


def test_bad_slates_and_foreign_ids_are_rejected() -> None:
    world = _small(n_requests=20)
    traffic = world.generate()
    k = world.config.slate_size
    with pytest.raises(ValueError, match=r"slates must be integer candidate indices"):
        world.rollout(traffic, np.zeros((20, k + 1), dtype=np.int64), seed=0)
    with pytest.raises(ValueError, match=r"outside 0\.\.19"):
        world.rollout(traffic, np.full((20, k), 20), seed=0)
    foreign = dataclasses.replace(traffic, item_ids=traffic.item_ids + 1000)
    with pytest.raises(ValueError, match=r"item_ids must be in 0\.\.999"):
        world.expected_rewards(foreign)
