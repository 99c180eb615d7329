"""Live A/B groups played by a world with known truth: each group is served by its own
weight vector on fresh requests, and reports what an experiment platform would.

A world's :meth:`~simulator.worlds.BaseWorld.rollout` draws examination and labels for any
slate; :func:`run_groups` uses it to simulate ``G`` experiment groups (one of them usually
the control): each gets ``users x requests_per_user`` requests of a pool of fresh requests
(disjoint between the groups of one call), ranks them top-K by its fused scores, draws the
labels, sums them per user and reports per task the mean per user and its standard error,
as a platform does. :func:`true_values` gives the exact value of the same policies.

A "user" here is ``requests_per_user`` consecutive requests of the shuffled pool, not one of
the world's users: the noise of a group is that of its requests' labels (the variance a
real platform sees from users' heterogeneity on top of that is not modelled).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from simulator.fusion import BaseFusion
from simulator.logs import LoggedTraffic
from simulator.policies import top_k
from simulator.worlds import BaseWorld

__all__ = ["GroupMetrics", "OnlineGroups", "run_groups", "true_values"]

_CELLS_PER_CHUNK = 2_000_000


@dataclass(frozen=True)
class OnlineGroups:
    """How big a simulated experiment group is.

    Args:
        users: users per group.
        requests_per_user: requests each user makes during the experiment.
    """

    users: int = 2000
    requests_per_user: int = 10

    def __post_init__(self) -> None:
        for name in ("users", "requests_per_user"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"OnlineGroups.{name} must be an integer >= 1, got {value!r}")
        if self.users < 2:
            raise ValueError(f"OnlineGroups.users is {self.users}; a standard error needs >= 2")

    @property
    def requests(self) -> int:
        """Requests per group."""
        return self.users * self.requests_per_user


@dataclass(frozen=True)
class GroupMetrics:
    """What a platform reports for one group: ``units`` users, and per metric (the world's
    tasks, and ``objective`` when weights were given) the mean per user and its standard
    error."""

    units: int
    mean: dict[str, float]
    se: dict[str, float]


def run_groups(world: BaseWorld, pool: LoggedTraffic, scores: np.ndarray, fusion: BaseFusion,
               weights: np.ndarray, groups: OnlineGroups, seed: int,
               objective: Mapping[str, float] | None = None) -> list[GroupMetrics]:
    """Serve each weight vector to a group of fresh requests and measure it.

    Args:
        world: the world ``pool`` comes from.
        pool: fresh requests of the world (not the log the search replays), at least
            ``G * groups.requests`` of them.
        scores: ``[R_pool, N, S]`` model scores of the pool's candidates.
        fusion: the fusion formula of ``weights``.
        weights: ``[G, S]`` one weight vector per group.
        groups: the size of each group.
        seed: seed of which requests each group gets and of its labels.
        objective: task -> weight; adds metric ``objective`` (its per-user mean, with the
            covariance of the tasks in its standard error).

    Returns:
        One :class:`GroupMetrics` per row of ``weights``.

    Raises:
        ValueError: the pool is too small for ``G`` disjoint groups.
    """
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    g, need = len(weights), groups.requests
    if pool.n_requests < g * need:
        raise ValueError(f"the pool has {pool.n_requests} requests; {g} groups of "
                         f"{groups.users} x {groups.requests_per_user} need {g * need}")
    rng = np.random.default_rng([seed, 11])
    order = rng.permutation(pool.n_requests)[: g * need].reshape(g, need)
    k = len(world.examination)
    tasks = world.tasks
    w_obj = (np.array([float(objective.get(t, 0.0)) for t in tasks])
             if objective is not None else None)
    out = []
    for i in range(g):
        rows = np.sort(order[i])
        part = pool.take(rows)
        fused = fusion.fuse(fusion.transform(scores[rows]), weights[i][None])[0]  # [R, N]
        slates = top_k(fused[None], k)[0].astype(np.int64)  # [R, K]
        labels = world.rollout(part, slates, seed=int(rng.integers(2**62)))  # [R, K, T]
        per_user = labels.sum(axis=1).reshape(groups.users, groups.requests_per_user,
                                              len(tasks)).sum(axis=1)  # [U, T]
        cols = {t: per_user[:, j] for j, t in enumerate(tasks)}
        if w_obj is not None:
            cols["objective"] = per_user @ w_obj
        n = groups.users
        out.append(GroupMetrics(
            n, {t: float(v.mean()) for t, v in cols.items()},
            {t: float(v.std(ddof=1) / np.sqrt(n)) for t, v in cols.items()}))
    return out


def true_values(world: BaseWorld, traffic: LoggedTraffic, scores: np.ndarray,
                fusion: BaseFusion, weights: np.ndarray) -> np.ndarray:
    """``[P, T]`` exact expected label sum per request of top-K by each weight vector.

    The same number as ``world.true_value`` of the top-K exposure, gathered per shown
    candidate in chunks of vectors (no ``[P, R, N]`` exposure held at once).

    Args:
        world: the world of ``traffic``.
        traffic: requests to value the policies on.
        scores: ``[R, N, S]`` model scores of its candidates.
        fusion: the fusion formula.
        weights: ``[P, S]`` weight vectors.
    """
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    r, n = traffic.n_requests, traffic.n_candidates
    rewards = world.expected_rewards(traffic)  # [R, N, T]
    transformed = fusion.transform(scores)
    exam = world.examination
    rows = np.arange(r)[:, None]
    step = max(1, _CELLS_PER_CHUNK // (r * n))
    out = np.empty((len(weights), rewards.shape[-1]))
    for start in range(0, len(weights), step):
        slates = top_k(fusion.fuse(transformed, weights[start:start + step]), len(exam))
        for j, s in enumerate(slates):  # s [R, K]
            out[start + j] = np.einsum("rkt,k->t", rewards[rows, s], exam) / r
    return out
