"""Simulated live groups against the world's truth."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.fusion import MultiplicativeFusion
from simulator.online import OnlineGroups, run_groups, true_values
from simulator.worlds import MarketplaceConfig, MarketplaceWorld


@pytest.mark.slow  # the first top-k imports torch: ~10 s on a busy machine
def test_group_means_estimate_the_true_value_within_their_errors() -> None:
    world = MarketplaceWorld(MarketplaceConfig(n_requests=4_000, seed=2))
    pool = world.generate()
    scores = world.true_probabilities(pool)
    fusion = MultiplicativeFusion()
    W = np.array([[1.0, 0.5, 0.5], [1.0, 3.0, 0.1]])
    groups = OnlineGroups(users=500, requests_per_user=4)
    got = run_groups(world, pool, scores, fusion, W, groups, seed=0,
                     objective={"click": 1.0, "conversion": 10.0, "like": 5.0})
    truth = true_values(world, pool, scores, fusion, W)  # [2, 3] per request
    for g, row in zip(got, truth, strict=True):
        assert g.units == 500
        for t, v in zip(world.tasks, row, strict=True):
            # a user's metric sums 4 requests; the groups' requests are a sample of the pool
            assert abs(g.mean[t] / 4 - v) < 4 * g.se[t] / 4 + 1e-12, (t, g.mean[t] / 4, v)
        obj = g.mean["click"] + 10 * g.mean["conversion"] + 5 * g.mean["like"]
        assert g.mean["objective"] == pytest.approx(obj)


def test_a_pool_too_small_for_disjoint_groups_is_refused() -> None:
    world = MarketplaceWorld(MarketplaceConfig(n_requests=100, seed=0))
    pool = world.generate()
    with pytest.raises(ValueError, match="the pool has 100 requests; 2 groups"):
        run_groups(world, pool, world.true_probabilities(pool), MultiplicativeFusion(),
                   np.ones((2, 3)), OnlineGroups(users=10, requests_per_user=10), seed=0)
