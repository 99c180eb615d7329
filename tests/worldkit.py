"""Logs of the synthetic marketplace with an imperfect, seeded "ranker" and exact truth.

The tests against ground truth need three things per world: its logged traffic,
per-task model scores of every logged candidate, and the *true* objective value of
any population of fusion weight vectors. The scores are the world's true
probabilities times seeded log-normal noise (a realistic imperfect ranker, without
training one), so the ranking a weight vector induces is not the one the truth
rewards, exactly as with a real model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.estimators import BaseEstimator, SlateFeedback
from simulator.fusion import MultiplicativeFusion
from simulator.intervals import BaseInterval, NormalInterval
from simulator.logs import LoggedTraffic
from simulator.policies import TopKPolicy, top_k
from simulator.replay import OBJECTIVE, Replay
from simulator.worlds import MarketplaceConfig, MarketplaceWorld
from tuner.space import FusionSpace
from tuner.strategies import CEM, CEMConfig

__all__ = [
    "FUSION",
    "OBJECTIVE_WEIGHTS",
    "SCORE_NOISE",
    "SPACE",
    "TASKS",
    "WorldLog",
    "make_log",
    "objective_of",
    "random_weights",
    "run_cem",
]

TASKS = ("click", "conversion", "like")
OBJECTIVE_WEIGHTS = {"click": 1.0, "conversion": 10.0, "like": 5.0}
SPACE = FusionSpace(TASKS, pinned="click", low=0.0, high=4.0)
FUSION = MultiplicativeFusion()
SCORE_NOISE = 0.3  # std of the log-normal noise on every predicted probability
_CELLS_PER_CHUNK = 2_000_000  # P * R * N fused scores held at once (8 MB of float32)


@dataclass(frozen=True)
class WorldLog:
    """A world, (part of) its log, and the model scores of the logged candidates.

    Args:
        world: the world that generated the log and knows its truth.
        traffic: the log, ``R`` requests of (up to) ``N`` candidates.
        scores: ``[R, N, 3]`` model scores (click, conversion | click, like).
    """

    world: MarketplaceWorld
    traffic: LoggedTraffic
    scores: np.ndarray

    @property
    def policy(self) -> TopKPolicy:
        return TopKPolicy(self.traffic.slate_size)

    def part(self, traffic: LoggedTraffic) -> WorldLog:
        """The sub-log ``traffic`` (a split of this log) with its rows of ``scores``.

        The world numbers requests ``0..R-1``, so a split's ``request_ids`` are row
        indices into the full log.
        """
        return WorldLog(self.world, traffic, self.scores[traffic.request_ids])

    def replay(self, estimator: BaseEstimator, interval: BaseInterval | None = None) -> Replay:
        """The replay of this log with ``estimator``, top-K ranking and multiplicative fusion."""
        feedback = SlateFeedback.from_traffic(self.traffic, TASKS, reward_model=self.scores)
        return Replay(feedback, self.scores, TASKS, FUSION, self.policy, estimator,
                      interval if interval is not None else NormalInterval())

    def estimate(self, replay: Replay, weights: np.ndarray) -> np.ndarray:
        """``[P]`` estimated objective of ``weights [P, 3]`` (a thin wrapper)."""
        result = replay.evaluate(weights, OBJECTIVE_WEIGHTS)
        return result.value[:, result.metrics.index(OBJECTIVE)]

    def exposure(self, weights: np.ndarray) -> np.ndarray:
        """``[P, R, N]`` exposure of the top-K policy of each weight vector."""
        valid = self.traffic.valid  # ragged: padding never ranked
        fused = FUSION.fuse(FUSION.prepare(self.scores, valid), np.atleast_2d(weights), valid)
        # each request valued on the slots it shows (the whole curve on a dense log)
        return self.policy.exposure(fused, self.traffic.request_examination(
            self.world.examination))

    def true_values(self, weights: np.ndarray) -> np.ndarray:
        """``[P, 3]`` true per-task values on this log's requests, by ``world.true_value``."""
        return self.world.true_value(self.traffic, self.exposure(weights))

    def true_objective(self, weights: np.ndarray) -> np.ndarray:
        """``[P]`` true objective on this log's requests, for large populations.

        The same number as ``true_values(weights) @ objective`` (a test checks it), by
        gathering the objective reward of each shown candidate instead of building the
        ``[P, R, N]`` exposure and a float64 copy of it: 3x faster, which a dense search
        of 20,000 vectors needs.
        """
        weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
        if self.traffic.valid is not None or not self.traffic.slot_shown.all():
            return objective_of(self.true_values(weights))  # ragged: by the exposure
        r, n = self.traffic.n_requests, self.traffic.n_candidates
        reward = self.world.expected_rewards(self.traffic) @ _objective_vector()  # [R, N]
        transformed = FUSION.transform(self.scores)
        exam = self.world.examination  # [K]
        rows = np.arange(r)[None, :, None]
        step = max(1, _CELLS_PER_CHUNK // (r * n))
        out = np.empty(len(weights))
        for start in range(0, len(weights), step):
            w = weights[start:start + step]
            slates = top_k(FUSION.fuse(transformed, w), len(exam))  # [p, R, K]
            out[start:start + step] = (reward[rows, slates] @ exam).mean(axis=1)
        return out


def _objective_vector() -> np.ndarray:
    return np.array([OBJECTIVE_WEIGHTS[t] for t in TASKS])


def objective_of(values: np.ndarray) -> np.ndarray:
    """``[P, 3]`` per-task values -> ``[P]`` objective values."""
    return np.asarray(values) @ _objective_vector()


def make_log(seed: int, n_requests: int, noise: float = SCORE_NOISE,
             candidates: str | None = None, shown_slots: str | None = None,
             taste_heterogeneity: float = 0.0) -> WorldLog:
    """The marketplace of ``seed`` with ``n_requests`` logged requests and noisy model scores.

    ``scores = clip(p_true * exp(noise * z), 1e-6, 1)``, ``z ~ N(0, 1)`` drawn from a
    stream of its own (``[seed, 7]``), so the world's traffic is untouched by it.
    ``candidates`` and ``shown_slots`` (``"low:high"``) make the log ragged (see
    :class:`~simulator.worlds.MarketplaceConfig`); its padding's scores are 1e-6.
    ``taste_heterogeneity``: how much users' best weights differ with their activity.
    """
    world = MarketplaceWorld(MarketplaceConfig(n_requests=n_requests, seed=seed,
                                               candidates=candidates, shown_slots=shown_slots,
                                               taste_heterogeneity=taste_heterogeneity))
    traffic = world.generate()
    truth = world.true_probabilities(traffic)  # [R, N, 3]
    z = np.random.default_rng([seed, 7]).standard_normal(truth.shape)
    scores = np.clip(truth * np.exp(noise * z), 1e-6, 1.0)
    return WorldLog(world, traffic, scores)


def random_weights(rng: np.random.Generator, m: int) -> np.ndarray:
    """``[m, 3]`` uniform weight vectors of ``SPACE``: click pinned at 1, the others in [0, 4]."""
    return SPACE.matrix_to_weights(rng.uniform(SPACE.low, SPACE.high, (m, SPACE.dim)))


def run_cem(
    log: WorldLog, replay: Replay, config: CEMConfig, generations: int, seed: int
) -> tuple[CEM, list[tuple[np.ndarray, np.ndarray]]]:
    """Run CEM by ask/tell on ``replay``'s objective estimates.

    Returns:
        the strategy after the last generation and the history ``[(X [M, 2], values [M])]``.
    """
    cem = CEM(SPACE, config, seed=seed)
    history = []
    for g in range(generations):
        X = cem.ask(g)
        values = log.estimate(replay, SPACE.matrix_to_weights(X))
        cem.tell(g, X, values)
        history.append((X, values))
    return cem, history
