"""What a replay reports for a population, and the additive sums it is made from.

:class:`PopulationEstimate` holds ``P`` policies' estimates on ``M`` metrics;
:class:`PopulationSums` the sums of some requests that every estimate, interval, ESS
and effective-events figure is finished from, so that chunks of a log (a stream, files,
Dask workers) add up to the estimate of the log held whole (:mod:`simulator.streaming`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from simulator.estimators._base import RequestTerms
from simulator.estimators._estimate import Estimate
from simulator.intervals import BaseInterval, TermSums

__all__ = ["OBJECTIVE", "PopulationEstimate", "PopulationSums", "metric_names",
           "objective_matrix"]

OBJECTIVE = "objective"


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
class PopulationSums:
    """Additive sums of ``P`` policies over some requests: all a streamed estimate needs.

    Args:
        terms: the interval's sufficient statistics.
        weight_sum: ``[P]`` sum of importance weights (ESS).
        weight_sq_sum: ``[P]`` sum of squared importance weights.
        label_sum: ``[P, T]`` weighted label sums, or None (see
            :class:`~simulator.estimators.RequestTerms`).
        label_sq_sum: ``[P, T, T]``, or None.
        impressions: impressions behind the label sums.
        impression_label_sum: ``[T]``, or None.
        impression_label_sq_sum: ``[T, T]``, or None.
    """

    terms: TermSums
    weight_sum: np.ndarray
    weight_sq_sum: np.ndarray
    label_sum: np.ndarray | None = None
    label_sq_sum: np.ndarray | None = None
    impressions: int = 0
    impression_label_sum: np.ndarray | None = None
    impression_label_sq_sum: np.ndarray | None = None

    @classmethod
    def of(cls, terms: RequestTerms, interval: BaseInterval, combine: np.ndarray,
           keys: np.ndarray | None) -> PopulationSums:
        """The sums of per-request ``terms`` of requests ``keys`` (their ids)."""
        return cls(interval.sums(terms, combine, keys), np.asarray(terms.weight_sum, float),
                   np.asarray(terms.weight_sq_sum, float), terms.label_sum,
                   terms.label_sq_sum, terms.impressions, terms.impression_label_sum,
                   terms.impression_label_sq_sum)

    def __add__(self, other: PopulationSums) -> PopulationSums:
        def add(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
            return None if a is None or b is None else a + b

        return PopulationSums(
            self.terms + other.terms, self.weight_sum + other.weight_sum,
            self.weight_sq_sum + other.weight_sq_sum, add(self.label_sum, other.label_sum),
            add(self.label_sq_sum, other.label_sq_sum), self.impressions + other.impressions,
            add(self.impression_label_sum, other.impression_label_sum),
            add(self.impression_label_sq_sum, other.impression_label_sq_sum))

    def take(self, policies: np.ndarray) -> PopulationSums:
        """The sums of a subset of the policies."""
        t = self.terms
        idx = np.asarray(policies)
        sub = TermSums(t.names, t.m, t.n, t.first[idx],
                       None if t.boot is None else t.boot[:, idx], t.boot_n,
                       None if t.scale_n is None else t.scale_n[idx])
        return PopulationSums(
            sub, self.weight_sum[idx], self.weight_sq_sum[idx],
            None if self.label_sum is None else self.label_sum[idx],
            None if self.label_sq_sum is None else self.label_sq_sum[idx], self.impressions,
            self.impression_label_sum, self.impression_label_sq_sum)

    def _moments(self) -> RequestTerms:
        """The sums as request-less terms, for their ``ess`` and ``expected_events``."""
        p = len(self.weight_sum)
        return RequestTerms(np.zeros((p, 0, 0)), None, None, self.weight_sum,
                            self.weight_sq_sum, None, self.label_sum, self.label_sq_sum,
                            self.impressions, self.impression_label_sum,
                            self.impression_label_sq_sum)

    def estimate(self, interval: BaseInterval, metrics: tuple[str, ...],
                 combine: np.ndarray) -> PopulationEstimate:
        """The estimates with intervals (``combine [T, M]`` as the sums were taken)."""
        low, high = interval.bounds_from(self.terms)
        moments = self._moments()
        return PopulationEstimate(metrics=metrics, value=self.terms.values(), low=low,
                                  high=high, ess=moments.ess, n=self.terms.n,
                                  level=interval.level,
                                  events=moments.expected_events(combine))


def metric_names(tasks: tuple[str, ...], objective: Mapping[str, float] | None
                 ) -> tuple[str, ...]:
    """The metrics of an estimate: the tasks, then the objective when one is given."""
    return tasks + ((OBJECTIVE,) if objective is not None else ())
