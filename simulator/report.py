"""A/B report: a treatment weight vector against a control, metric by metric."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from simulator.estimators._estimate import Estimate
from simulator.intervals import point_values
from simulator.replay import OBJECTIVE, Replay, objective_matrix

__all__ = ["ABReport", "ABRow", "ab_report"]


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
    replay: Replay,
    control: np.ndarray,
    treatment: np.ndarray,
    objective: Mapping[str, float] | None = None,
) -> ABReport:
    """Estimate control and treatment and their paired difference on every metric.

    Args:
        replay: the replay over the log to judge on.
        control: ``[S]`` control weights.
        treatment: ``[S]`` treatment weights.
        objective: task -> weight of a business objective to report too.
    """
    weights = np.stack([np.asarray(control, float), np.asarray(treatment, float)])
    terms = replay.terms(weights)
    combine = objective_matrix(replay.feedback.tasks, objective)
    metrics: Sequence[str] = replay.feedback.tasks + ((OBJECTIVE,) if objective else ())
    value = point_values(terms, combine)  # [2, M]
    low, high = replay.interval.bounds(terms, combine, keys=replay.request_ids)
    contrast = np.array([[-1.0, 1.0]])
    d_low, d_high = replay.interval.bounds(terms, combine, contrast, replay.request_ids)
    ess = terms.ess
    events = terms.expected_events(combine)  # [2, M], as PopulationEstimate.events
    n = replay.feedback.n_requests
    level = replay.interval.level
    rows = []
    for m, name in enumerate(metrics):
        arms = [Estimate(float(value[p, m]), float(low[p, m]), float(high[p, m]),
                         float(ess[p]), n, level, float(events[p, m])) for p in range(2)]
        diff = float(value[1, m] - value[0, m])
        # the lift is no surer than its thinner arm (np.min keeps nan, builtin min may not)
        lift = Estimate(diff, float(d_low[0, m]), float(d_high[0, m]), float(min(ess)), n, level,
                        float(np.min(events[:, m])))
        rows.append(ABRow(name, arms[0], arms[1], lift))
    return ABReport(tuple(rows), n, replay.estimator.name)
