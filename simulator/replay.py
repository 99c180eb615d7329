"""Replay: estimate what a whole population of fusion weight vectors would earn.

For ``P`` weight vectors the replay fuses the per-task scores of every logged
candidate, ranks each request with a policy, and hands the resulting exposure
to an estimator, in chunks of requests so memory stays ``O(P * chunk * N)``.
One pass evaluates a whole CEM generation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from simulator.estimators._base import BaseEstimator, RequestTerms, SlateFeedback
from simulator.estimators._estimate import Estimate
from simulator.fusion._base import BaseFusion
from simulator.intervals import BaseInterval, BootstrapInterval, point_values
from simulator.policies import BasePolicy

__all__ = ["MIN_EVENTS", "OBJECTIVE", "PopulationEstimate", "Replay", "objective_matrix"]

OBJECTIVE = "objective"

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


def objective_matrix(tasks: Sequence[str], objective: Mapping[str, float] | None) -> np.ndarray:
    """``[T, M]`` map from per-task values to the reported metrics.

    The first ``T`` columns are the tasks themselves; with an ``objective``
    (task -> weight), one more column is the weighted business objective.

    Raises:
        ValueError: an objective naming a task the log does not have, or a
            non-finite weight.
    """
    t = len(tasks)
    if objective is None:
        return np.eye(t)
    unknown = [k for k in objective if k not in tasks]
    if unknown:
        raise ValueError(f"objective names unknown task(s) {unknown}; valid: {list(tasks)}")
    col = np.array([float(objective.get(k, 0.0)) for k in tasks])
    if not np.isfinite(col).all():
        raise ValueError(f"objective weights must be finite, got {dict(objective)}")
    return np.concatenate([np.eye(t), col[:, None]], axis=1)


@dataclass(frozen=True)
class PopulationEstimate:
    """Estimates of ``P`` policies on ``M`` metrics.

    Args:
        metrics: metric names (tasks, then ``"objective"`` when one was given).
        value: ``[P, M]`` point estimates (expected label sum per request).
        low: ``[P, M]`` lower interval ends.
        high: ``[P, M]`` upper interval ends.
        ess: ``[P]`` effective sample sizes.
        n: number of requests.
        level: confidence level.
        events: ``[P, M]`` effective number of label events behind each estimate
            (:meth:`RequestTerms.expected_events`: unlike the realized
            :meth:`RequestTerms.events` it falls, not rises, when a log lacks the
            rare heavily weighted events; see :data:`MIN_EVENTS`), nan where the
            estimator has no importance weights; None (not computed) reads as all nan.
    """

    metrics: tuple[str, ...]
    value: np.ndarray
    low: np.ndarray
    high: np.ndarray
    ess: np.ndarray
    n: int
    level: float
    events: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.value.shape[0])

    def estimate(self, policy: int, metric: str = OBJECTIVE) -> Estimate:
        """The :class:`Estimate` of one policy on one metric."""
        m = self.metrics.index(metric)
        return Estimate(
            value=float(self.value[policy, m]),
            low=float(self.low[policy, m]),
            high=float(self.high[policy, m]),
            ess=float(self.ess[policy]),
            n=self.n,
            level=self.level,
            events=math.nan if self.events is None else float(self.events[policy, m]),
        )


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

    def __post_init__(self) -> None:
        r, n = self.feedback.shown.shape
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
        """Estimates with intervals from per-request terms (see :meth:`terms`)."""
        combine = objective_matrix(self.feedback.tasks, objective)
        low, high = self.interval.bounds(terms, combine)
        metrics = self.feedback.tasks + ((OBJECTIVE,) if objective is not None else ())
        return PopulationEstimate(
            metrics=metrics,
            value=point_values(terms, combine),
            low=low,
            high=high,
            ess=terms.ess,
            n=self.feedback.n_requests,
            level=self.interval.level,
            events=terms.expected_events(combine),
        )
