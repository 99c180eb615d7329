"""A small learnable synthetic problem for ranker tests: click, like and conversion-after-click."""

from __future__ import annotations

import numpy as np

from ranker import (
    CategoricalFeature,
    FeatureSpec,
    MMoEConfig,
    NumericFeature,
    RankerData,
    TaskSpec,
)

FEATURES: list[FeatureSpec] = [
    CategoricalFeature("user", vocab_size=40, dim=4),
    CategoricalFeature("item", vocab_size=60, dim=4),
    NumericFeature("x0"),
    NumericFeature("x1"),
    NumericFeature("price"),
]
TASKS = [TaskSpec("click"), TaskSpec("like"), TaskSpec("conversion", sample_space="after:click")]
SMALL = MMoEConfig(n_experts=2, expert_hidden=(32, 16), tower_hidden=(8,))


def make_data(n: int, seed: int) -> RankerData:
    """Rows whose labels follow known logits of the features.

    The world (id effects) is fixed; ``seed`` draws the rows.
    """
    world = np.random.default_rng(1234)
    item_effect = world.normal(0.0, 1.5, 60)
    user_effect = world.normal(0.0, 1.0, 40)
    rng = np.random.default_rng(seed)
    user = rng.integers(0, 40, n)
    item = rng.integers(0, 60, n)
    x0 = rng.normal(size=n)
    x1 = rng.normal(size=n)
    price = rng.lognormal(3.0, 0.5, n)  # far from standardized, on purpose

    def draw(logit: np.ndarray) -> np.ndarray:
        return (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float32)

    click = draw(-0.5 + 1.5 * x0 + item_effect[item])
    like = draw(-1.0 + 1.5 * x1 + user_effect[user])
    conversion = draw(-1.0 - 0.08 * (price - 20.0) + user_effect[user]) * click
    return RankerData(
        {"user": user, "item": item, "x0": x0, "x1": x1, "price": price},
        {"click": click, "like": like, "conversion": conversion},
    )
