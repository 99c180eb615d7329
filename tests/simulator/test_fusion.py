"""Fusion formulas and ranking policies."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.fusion import (
    AdditiveFusion,
    MultiplicativeFusion,
    RankFusion,
    WeightError,
    make_fusion,
)
from simulator.policies import EpsilonGreedyTopK, TopKPolicy

TASKS = ("click", "like")


def _scores(seed: int = 0, r: int = 50, n: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.01, 0.99, size=(r, n, len(TASKS)))


def test_multiplicative_ranks_like_the_product() -> None:
    scores = _scores()
    w = np.array([[1.0, 2.5]])
    f = MultiplicativeFusion()
    fused = f.fuse(f.transform(scores), w)[0]
    product = scores[..., 0] ** 1.0 * scores[..., 1] ** 2.5
    np.testing.assert_array_equal(np.argsort(-fused, axis=1), np.argsort(-product, axis=1))


def test_multiplicative_ranking_is_scale_invariant() -> None:
    f = MultiplicativeFusion()
    x = f.transform(_scores())
    w = np.array([[1.0, 0.7]])
    a = TopKPolicy(3).sample(f.fuse(x, w), seed=0)
    b = TopKPolicy(3).sample(f.fuse(x, 3.0 * w), seed=0)
    np.testing.assert_array_equal(a, b)


def test_additive_identity_is_the_weighted_sum() -> None:
    scores = _scores()
    f = AdditiveFusion("identity")
    fused = f.fuse(f.transform(scores), np.array([[2.0, -1.0]]))[0]
    np.testing.assert_allclose(fused, 2 * scores[..., 0] - scores[..., 1], atol=1e-6)  # float32


def test_rank_fusion_uses_reciprocal_ranks() -> None:
    scores = np.array([[[0.9, 0.1], [0.5, 0.8], [0.1, 0.5]]])  # 1 request, 3 candidates
    f = RankFusion(c=1.0)
    fused = f.fuse(f.transform(scores), np.array([[1.0, 1.0]]))[0, 0]
    # ranks by click: 1, 2, 3; by like: 3, 1, 2
    np.testing.assert_allclose(fused, [1 / 2 + 1 / 4, 1 / 3 + 1 / 2, 1 / 4 + 1 / 3], rtol=1e-6)


@pytest.mark.parametrize(
    ("fusion", "weights", "match"),
    [
        (MultiplicativeFusion(), [1.0], "needs 2 weights, one per task"),
        (MultiplicativeFusion(), [1.0, np.nan], "weight of task 'like' is nan; weights must be"),
        (MultiplicativeFusion(), [1.0, -0.5], "weight of task 'like' is -0.5; multiplicative"),
        (RankFusion(), [-1.0, 1.0], "weight of task 'click' is -1.0; rank fusion needs"),
        (AdditiveFusion(), [0.0, 0.0], "all weights are zero"),
    ],
)
def test_bad_weights_are_refused(fusion, weights, match) -> None:
    with pytest.raises(WeightError, match=match):
        fusion.validate_weights(np.array(weights), TASKS)


def test_additive_allows_negative_weights() -> None:
    w = AdditiveFusion().validate_weights(np.array([1.0, -0.5]), TASKS)
    assert w.shape == (1, 2)


def test_unknown_names_list_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"valid: \['additive', 'multiplicative', 'rank'\]"):
        make_fusion("max")
    with pytest.raises(ValueError, match="valid: \\['identity', 'log', 'logit', 'sqrt'\\]"):
        AdditiveFusion("exp")


def test_top_k_is_the_best_k_in_order() -> None:
    fused = np.array([[0.1, 0.9, 0.5, 0.7]])
    assert TopKPolicy(3).sample(fused, seed=0).tolist() == [[1, 3, 2]]
    exposure = TopKPolicy(3).exposure(fused[None], np.array([1.0, 0.5, 0.25]))
    np.testing.assert_allclose(exposure[0, 0], [0.0, 1.0, 0.25, 0.5])


def test_epsilon_greedy_propensities_match_its_sampling() -> None:
    policy = EpsilonGreedyTopK(k=2, epsilon=0.4)
    fused = np.tile(np.array([[0.3, 0.9, 0.1, 0.5]]), (40_000, 1))
    slates = policy.sample(fused, seed=3)
    empirical = np.zeros((4, 2))
    for slot in range(2):
        empirical[:, slot] = np.bincount(slates[:, slot], minlength=4) / len(slates)
    np.testing.assert_allclose(empirical, policy.pscores(fused[:1])[0], atol=0.01)
