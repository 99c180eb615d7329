"""Replay: estimate what a whole population of fusion weight vectors would earn.

For ``P`` weight vectors the replay fuses the per-task scores of every logged
candidate, ranks each request with a policy, and hands the resulting exposure
to an estimator, in chunks of requests so memory stays ``O(P * chunk * N)``.
One pass evaluates a whole CEM generation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from simulator.estimators._base import BaseEstimator, RequestTerms, SlateFeedback
from simulator.fusion._base import BaseFusion
from simulator.intervals import BaseInterval, BootstrapInterval
from simulator.policies import BasePolicy
from simulator.population import (
    OBJECTIVE,
    PopulationEstimate,
    PopulationSums,
    metric_names,
    objective_matrix,
)

__all__ = ["MIN_EVENTS", "OBJECTIVE", "PopulationEstimate", "Replay", "objective_matrix"]

MIN_EVENTS = 100.0
"""Fewest effective label events (``PopulationEstimate.events``) an estimate may rest on
before its interval is reported as possibly too narrow: the smallest bin edge above which
the measured coverage of SNIPS's 95% intervals (every task and the objective, near and far
vectors, both worlds, 1,000 and 10,000 requests) stays within 93-97%.

Coverage (percentile bootstrap / normal) binned by the events behind each estimate,
``python bench/estimator_quality.py --seeds 200 --requests 1000 --estimators snips
--tau-seeds 0`` (and ``--seeds 60 --requests 10000``)::

    expected events     [0,10)     [10,30)    [30,100)   [100,300)   >= 100
    kuairand   1,000  .766/.762  .881/.881  .913/.918  .956/.959  .956/.959
    market.    1,000  .890/.878  .933/.933  .913/.923  .943/.954  .943/.954
    kuairand  10,000      -          -      .926/.931  .935/.957  .947/.957
    market.   10,000      -          -      .948/.955  .949/.952  .945/.955

    realized events     [0,10)     [10,30)    [30,100)   [100,300)   >= 100
    kuairand   1,000  .990/.997  .904/.906  .695/.690  .935/.937  .935/.937
    market.    1,000  .944/1.00  .911/.908  .940/.943  .886/.896  .885/.894
    kuairand  10,000      -          -      .963/.971  .913/.926  .938/.947
    market.   10,000      -          -      1.00/1.00  .962/.964  .945/.954

(bins hold 800-5,000 estimates at 1,000 requests and 34-1,900 at 10,000; two Monte
Carlo standard errors, clustered by log, are 0.01-0.05; "-": an empty bin).

The warning uses the *expected* events (:meth:`RequestTerms.expected_events`, the
weights' ESS times the log's label share ``m1^2 / m2``), not the realized Kish ESS of
the weighted label contributions (:meth:`RequestTerms.events`): a log that happens to
lack the rare heavily weighted events rests on many light ones, so its realized events
are *high* while its interval is too narrow, and one that holds such an event has few
realized events but a wide interval. Realized events run against coverage (KuaiRand at
1,000 requests: 99% below 10 events, 69% at 30-100), and on the marketplace at 1,000
requests no threshold on them reaches 93%.
"""


@dataclass(frozen=True)
class Replay:
    """Off-policy replay of fused rankings over a log.

    Args:
        feedback: the log's labels, exposure and examination, for the metric tasks.
        scores: ``[R, N, S]`` per-task model scores of every logged candidate,
            aligned with the log (see ``score_tasks``).
        score_tasks: names of the ``S`` score columns, the order of a weight vector.
        fusion: the fusion formula.
        policy: the ranking policy.
        estimator: the off-policy estimator.
        interval: how intervals are computed.
        chunk_requests: requests per pass (memory ``~ P * chunk * N * 4`` bytes).
        request_ids: ``[R]`` the requests' ids, the keys of their bootstrap weights (so an
            interval is the one a streamed or sharded replay of the same requests gives,
            :mod:`simulator.streaming`); None: ``0..R-1``.

    Example:
        >>> from simulator.estimators import SNIPS, SlateFeedback
        >>> from simulator.fusion import MultiplicativeFusion
        >>> from simulator.policies import TopKPolicy
        >>> from simulator.worlds import MarketplaceConfig, MarketplaceWorld
        >>> world = MarketplaceWorld(MarketplaceConfig(n_requests=200))
        >>> traffic = world.generate()
        >>> scores = world.true_probabilities(traffic)[..., [0, 2]]  # [R, N, 2]: click, like
        >>> replay = Replay(SlateFeedback.from_traffic(traffic), scores, ("click", "like"),
        ...                 MultiplicativeFusion(), TopKPolicy(5), SNIPS())
        >>> w = np.array([[1.0, 0.5]])
        >>> result = replay.evaluate(w, {"click": 1, "like": 3})
        >>> result.metrics, result.value.shape
        (('click', 'conversion', 'like', 'objective'), (1, 4))
    """

    feedback: SlateFeedback
    scores: np.ndarray
    score_tasks: tuple[str, ...]
    fusion: BaseFusion
    policy: BasePolicy
    estimator: BaseEstimator
    interval: BaseInterval = BootstrapInterval()
    chunk_requests: int = 5000
    request_ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        r, n = self.feedback.shown.shape
        if self.request_ids is not None and np.shape(self.request_ids) != (r,):
            raise ValueError(f"request_ids must have shape [R] = [{r}], got "
                             f"{list(np.shape(self.request_ids))}")
        if self.scores.shape != (r, n, len(self.score_tasks)):
            raise ValueError(
                f"scores must have shape [R, N, S] = {(r, n, len(self.score_tasks))} for "
                f"score tasks {list(self.score_tasks)}, got {self.scores.shape}"
            )
        valid = self.feedback.valid  # ragged requests: padding is never ranked
        if not np.isfinite(self.scores if valid is None else self.scores[valid]).all():
            raise ValueError("scores contain non-finite values")
        if self.policy.k > self.feedback.examination.shape[0]:
            raise ValueError(f"policy slate size {self.policy.k} exceeds the log's "
                             f"{self.feedback.examination.shape[0]} slots")
        # transformed once: the only per-vector work left is a product and a top-k
        object.__setattr__(self, "_transformed", self.fusion.prepare(self.scores, valid))
        # request chunks are sliced (and validated) once, not once per generation
        bounds = range(0, self.feedback.n_requests, self.chunk_requests)
        chunks = [(a, min(a + self.chunk_requests, self.feedback.n_requests)) for a in bounds]
        prepared = self.estimator.prepare(self.feedback)  # e.g. a reward model fitted on it
        object.__setattr__(self, "_chunks", [(a, b, prepared.chunk(a, b)) for a, b in chunks])

    def subset(self, rows: slice | np.ndarray) -> Replay:
        """The replay of some of its requests (a slice, or row indices in order), each
        keeping its scores and its bootstrap key (``request_ids``)."""
        ids = self.request_ids
        if isinstance(rows, slice) and rows.step not in (None, 1):
            rows = np.arange(self.feedback.n_requests)[rows]
        if isinstance(rows, slice):
            feedback = self.feedback.chunk(*rows.indices(self.feedback.n_requests)[:2])
        else:
            rows = np.asarray(rows, dtype=np.int64)
            feedback = self.feedback.take(rows)
        return replace(self, feedback=feedback, scores=self.scores[rows],
                       request_ids=None if ids is None else np.asarray(ids)[rows])

    @property
    def tasks(self) -> tuple[str, ...]:
        """The log's label tasks."""
        return self.feedback.tasks

    def terms(self, weights: np.ndarray) -> RequestTerms:
        """Per-request estimator terms of a population ``[P, S]`` of weight vectors."""
        w = self.fusion.validate_weights(weights, self.score_tasks)
        transformed: np.ndarray = self.__dict__["_transformed"]
        parts = []
        for start, stop, feedback in self.__dict__["_chunks"]:
            fused = self.fusion.fuse(transformed[start:stop], w, feedback.valid)  # [P, c, N]
            # the estimator asks the policy for what it needs (exposure by default)
            parts.append(self.estimator.policy_terms(feedback, self.policy, fused))
        return self.estimator.finish(RequestTerms.concatenate(parts))

    def request_terms(self, weights: np.ndarray) -> RequestTerms:
        """Per-request estimator terms of ``P`` policies whose weights vary per request.

        Request ``r`` of policy ``p`` is ranked by ``fuse(scores_r, weights[p, r])``: a
        personalised policy (a weight model ``w(x_r)``, a segment table) is valued by the
        same estimator as a constant vector, and a constant one (every row the same) gets
        the terms of :meth:`terms` (tested).

        Args:
            weights: ``[P, R, S]`` (or ``[R, S]``: one policy) weights of each request.
        """
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim == 2:
            w = w[None]
        r, s = self.feedback.n_requests, len(self.score_tasks)
        if w.ndim != 3 or w.shape[1:] != (r, s):
            raise ValueError(f"per-request weights must be [P, R, S] = [P, {r}, {s}] (one "
                             f"row per request of the replay, one weight per score task "
                             f"{list(self.score_tasks)}); got {list(np.shape(weights))}")
        self.fusion.validate_weights(w.reshape(-1, s), self.score_tasks)
        transformed: np.ndarray = self.__dict__["_transformed"]
        parts = []
        for start, stop, feedback in self.__dict__["_chunks"]:
            fused = self.fusion.fuse(transformed[start:stop], w[:, start:stop],
                                     feedback.valid)  # [P, c, N]
            parts.append(self.estimator.policy_terms(feedback, self.policy, fused))
        return self.estimator.finish(RequestTerms.concatenate(parts))

    def evaluate_per_request(
        self, weights: np.ndarray, objective: Mapping[str, float] | None = None
    ) -> PopulationEstimate:
        """:meth:`evaluate` of policies whose weights vary per request (``[P, R, S]``, see
        :meth:`request_terms`)."""
        return self.estimates(self.request_terms(weights), objective)

    def evaluate(
        self, weights: np.ndarray, objective: Mapping[str, float] | None = None
    ) -> PopulationEstimate:
        """Estimates with intervals of every weight vector of a population.

        Args:
            weights: ``[P, S]`` (or ``[S]``) fusion weight vectors.
            objective: task -> weight of the business objective, or None.
        """
        return self.estimates(self.terms(weights), objective)

    def estimates(
        self, terms: RequestTerms, objective: Mapping[str, float] | None = None
    ) -> PopulationEstimate:
        """Estimates with intervals from per-request terms (see :meth:`terms`).

        Made from the terms' sums, as a streamed replay makes them from its chunks'.
        """
        combine = objective_matrix(self.feedback.tasks, objective)
        sums = PopulationSums.of(terms, self.interval, combine, self.request_ids)
        return sums.estimate(self.interval, metric_names(self.feedback.tasks, objective),
                             combine)


