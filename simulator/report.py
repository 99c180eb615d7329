"""A/B report: a treatment weight vector against a control, metric by metric.

Its numbers come from :class:`Arms`: a few policies estimated on the same requests, with
the paired intervals of contrasts between them, made from per-request terms on a log held
whole (:class:`~simulator.replay.Replay`) or from sums on a streamed one
(:class:`~simulator.streaming.StreamedReplay`: the percentile bootstrap's resampled sums
are keyed by request id, so both arms are resampled on the same requests there too).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.estimators._base import RequestTerms
from simulator.estimators._estimate import Estimate
from simulator.intervals import BaseInterval, TermSums
from simulator.ordering import covariance
from simulator.population import PopulationEstimate, PopulationSums, metric_names
from simulator.replay import Replay, objective_matrix
from simulator.streaming import StreamedReplay

__all__ = ["ABReport", "ABRow", "Arms", "ab_report", "report_of"]


@dataclass(frozen=True)
class Arms:
    """``P`` policies estimated on the same requests, and contrasts between them.

    Made by :meth:`of` from a replay held whole (per-request ``terms``) or a streamed one
    (``sums``); exactly one of the two is set.

    Args:
        estimate: every policy's estimate with its interval.
        interval: the replay's interval method.
        combine: ``[T, M]`` task -> metric matrix the estimate was made with.
        terms: per-request terms (a log held whole), or None.
        keys: the request ids the bootstrap weights are keyed by, or None.
        sums: the sums of a streamed replay, or None.
        estimator: the estimator's name.
    """

    estimate: PopulationEstimate
    interval: BaseInterval
    combine: np.ndarray
    terms: RequestTerms | None = None
    keys: np.ndarray | None = None
    sums: PopulationSums | None = None
    estimator: str = ""

    @classmethod
    def of(cls, replay: Replay | StreamedReplay, weights: np.ndarray,
           objective: Mapping[str, float] | None = None) -> Arms:
        """The policies ``weights [P, S]`` on ``replay``'s requests (one pass)."""
        metrics = metric_names(replay.tasks, objective)
        combine = objective_matrix(replay.tasks, objective)
        name = replay.estimator.name
        if isinstance(replay, StreamedReplay):
            sums = replay.sums(weights, objective)
            return cls(sums.estimate(replay.interval, metrics, combine), replay.interval,
                       combine, sums=sums, estimator=name)
        terms = replay.terms(weights)
        return cls(replay.estimates(terms, objective), replay.interval, combine, terms=terms,
                   keys=replay.request_ids, estimator=name)

    def bounds(self, contrast: np.ndarray, level: float | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """``(low, high)``, each ``[Q, M]``, of ``contrast [Q, P]`` applied to the policies'
        values, both arms on the same resampled requests (``level``: another than the
        interval's).

        Raises:
            ValueError: on a streamed log, an interval method that cannot make a
                contrast from sums (only the percentile bootstrap can).
        """
        base: Any = self.interval  # every interval method is a frozen dataclass with a level
        interval = base if level is None else dataclasses.replace(base, level=level)
        if self.terms is not None:
            return interval.bounds(self.terms, self.combine, contrast, self.keys)
        return interval.bounds_from(self._term_sums(), contrast)

    def contrast_sd(self, contrast: np.ndarray) -> np.ndarray:
        """``[Q, M]`` standard deviations of the contrasts: the delta method's on terms held
        whole, the bootstrap resamples' spread on a streamed log."""
        if self.terms is not None:
            cov = covariance(self.terms, self.combine)  # [M, P, P]
            var = np.einsum("qp,mpr,qr->qm", contrast, cov, contrast)
            return np.sqrt(np.maximum(var, 0.0))
        draws = np.einsum("qp,bpm->bqm", contrast, self._term_sums().draws())
        return np.asarray(draws.std(axis=0, ddof=1))

    def _term_sums(self) -> TermSums:
        if self.sums is None:
            raise ValueError("these arms hold neither terms nor sums")
        return self.sums.terms


@dataclass(frozen=True)
class ABRow:
    """One metric of an A/B report.

    Args:
        metric: task name or ``"objective"``.
        control: estimate of the control policy.
        treatment: estimate of the treatment policy.
        lift: ``treatment - control`` as an :class:`Estimate` whose interval comes
            from resampling the *same* requests for both arms (paired); its
            ``events`` is the smaller of the two arms'.
    """

    metric: str
    control: Estimate
    treatment: Estimate
    lift: Estimate

    @property
    def relative_lift(self) -> float:
        """``lift / control`` (nan if the control is 0)."""
        return self.lift.value / self.control.value if self.control.value else float("nan")


@dataclass(frozen=True)
class ABReport:
    """Per-metric A/B comparison on one log."""

    rows: tuple[ABRow, ...]
    n_requests: int
    estimator: str

    def row(self, metric: str) -> ABRow:
        for r in self.rows:
            if r.metric == metric:
                return r
        raise KeyError(f"no metric {metric!r}; metrics: {[r.metric for r in self.rows]}")


def ab_report(
    replay: Replay | StreamedReplay,
    control: np.ndarray,
    treatment: np.ndarray,
    objective: Mapping[str, float] | None = None,
) -> ABReport:
    """Estimate control and treatment and their paired difference on every metric.

    Args:
        replay: the replay over the log to judge on (held whole or streamed).
        control: ``[S]`` control weights.
        treatment: ``[S]`` treatment weights.
        objective: task -> weight of a business objective to report too.

    Raises:
        ValueError: a streamed replay whose interval cannot pair the arms from sums.
    """
    weights = np.stack([np.asarray(control, float), np.asarray(treatment, float)])
    return report_of(Arms.of(replay, weights, objective))


def report_of(arms: Arms) -> ABReport:
    """:func:`ab_report` of arms already evaluated: ``[control, treatment]`` (so a caller
    that also tests them replays the log once).

    Raises:
        ValueError: a streamed replay's arms whose interval cannot pair them from sums.
    """
    est = arms.estimate
    metrics, value, low, high = est.metrics, est.value, est.low, est.high  # each [2, M]
    d_low, d_high = arms.bounds(np.array([[-1.0, 1.0]]))
    ess, n, level = est.ess, est.n, est.level
    events = est.events if est.events is not None else np.full_like(value, np.nan)
    rows = []
    for m, name in enumerate(metrics):
        each = [Estimate(float(value[p, m]), float(low[p, m]), float(high[p, m]),
                         float(ess[p]), n, level, float(events[p, m])) for p in range(2)]
        diff = float(value[1, m] - value[0, m])
        # the lift is no surer than its thinner arm (np.min keeps nan, builtin min may not)
        lift = Estimate(diff, float(d_low[0, m]), float(d_high[0, m]), float(min(ess)), n, level,
                        float(np.min(events[:, m])))
        rows.append(ABRow(name, each[0], each[1], lift))
    return ABReport(tuple(rows), n, arms.estimator)
