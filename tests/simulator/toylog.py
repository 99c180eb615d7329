"""A tiny position-based world for estimator tests, independent of simulator.worlds."""

from __future__ import annotations

import numpy as np

from simulator.logs import LoggedTraffic
from simulator.policies import EpsilonGreedyTopK

TASKS = ("click", "like")


def make_toy(
    seed: int, n_requests: int = 400, n_candidates: int = 8, k: int = 3, epsilon: float = 0.3,
    cascade: bool = False,
) -> tuple[LoggedTraffic, np.ndarray, np.ndarray]:
    """Logs of an epsilon-greedy logger; returns (traffic, true rewards [R,N,T], scores [R,N,T]).

    ``scores`` is a noisy model of the rewards (what a ranker would give). With
    ``cascade`` the user stops examining after the first click, which breaks the
    position-based model.
    """
    rng = np.random.default_rng(seed)
    r, n = n_requests, n_candidates
    world = np.random.default_rng(12345)  # the same true rewards for every seed
    rewards = world.uniform(0.05, 0.6, size=(r, n, len(TASKS)))
    scores = np.clip(rewards * np.exp(world.normal(0, 0.3, rewards.shape)), 1e-3, 0.999)
    examination = 1.0 / (1.0 + np.arange(k)) ** 0.8
    logger = EpsilonGreedyTopK(k=k, epsilon=epsilon)
    logging_score = np.log(scores[..., 0]) + 0.2 * world.normal(size=(r, n))
    pscores = logger.pscores(logging_score)
    slates = logger.sample(logging_score, seed=seed)  # [R, K]
    positions = np.full((r, n), -1, dtype=np.int64)
    np.put_along_axis(positions, slates, np.arange(k)[None, :], axis=1)
    examined = rng.random((r, k)) < examination[None, :]
    shown_rewards = np.take_along_axis(rewards, slates[..., None], axis=1)  # [R, K, T]
    labels_k = (rng.random(shown_rewards.shape) < shown_rewards) & examined[..., None]
    if cascade:
        clicked_before = np.cumsum(labels_k[..., 0], axis=1) - labels_k[..., 0] > 0
        labels_k = labels_k & ~clicked_before[..., None]
    labels = np.zeros((r, n, len(TASKS)))
    np.put_along_axis(labels, slates[..., None], labels_k.astype(float), axis=1)
    traffic = LoggedTraffic(
        request_ids=np.arange(r, dtype=np.int64),
        user_ids=np.arange(r, dtype=np.int64),
        item_ids=np.tile(np.arange(n, dtype=np.int64), (r, 1)),
        positions=positions,
        pscores=pscores,
        labels={t: labels[..., i] for i, t in enumerate(TASKS)},
        examination=examination,
    )
    return traffic, rewards, scores
