"""Non-dominated sorting, and the Pareto front of the trials stored in a study.

Dominance is among maximised vectors: ``a`` dominates ``b`` when ``a >= b`` on every metric
and ``a > b`` on one. A metric to be minimised is negated first (``directions``). Identical
vectors do not dominate each other, so duplicates share a front.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from tuner.space import FusionSpace
from tuner.study import INFEASIBLE, is_feasible_complete, jsonable

__all__ = [
    "DIRECTIONS",
    "MetricEstimate",
    "ParetoFront",
    "ParetoPoint",
    "dominates",
    "front_of_trials",
    "non_dominated_ranks",
    "pareto_mask",
]

DIRECTIONS = ("maximize", "minimize")
_CHUNK_CELLS = 4_000_000  # rows x columns of the dominance matrix built at a time


def _signed(values: np.ndarray, directions: Sequence[str] | None) -> np.ndarray:
    Y = np.asarray(values, dtype=np.float64)
    if Y.ndim != 2:
        raise ValueError(f"values have shape {Y.shape}; need [n, K]")
    if directions is None:
        return Y
    if len(directions) != Y.shape[1] or any(d not in DIRECTIONS for d in directions):
        raise ValueError(f"directions {list(directions)} must give one of {list(DIRECTIONS)} "
                         f"per metric ({Y.shape[1]})")
    return Y * np.array([1.0 if d == "maximize" else -1.0 for d in directions])


def dominates(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether each row of ``a [..., K]`` dominates the matching row of ``b`` (maximising)."""
    return np.asarray((a >= b).all(axis=-1) & (a > b).any(axis=-1))


def _dominance(Y: np.ndarray) -> np.ndarray:
    """``D [n, n]`` with ``D[i, j]``: row ``i`` dominates row ``j``; built in row chunks so
    the ``[c, n, K]`` comparison stays a few million cells."""
    n = Y.shape[0]
    D = np.empty((n, n), dtype=bool)
    step = max(1, _CHUNK_CELLS // max(1, n * Y.shape[1]))
    for a in range(0, n, step):
        D[a:a + step] = dominates(Y[a:a + step, None, :], Y[None, :, :])
    return D


def pareto_mask(values: np.ndarray, directions: Sequence[str] | None = None) -> np.ndarray:
    """``[n]`` bool: which rows of ``values [n, K]`` no other row dominates.

    Rows with a non-finite value (NaN, inf) are never on the front and dominate nothing.

    Example:
        >>> pareto_mask(np.array([[1, 2], [2, 1], [1, 1], [2, 1]])).tolist()
        [True, True, False, True]
    """
    return non_dominated_ranks(values, directions) == 0


def non_dominated_ranks(values: np.ndarray,
                        directions: Sequence[str] | None = None) -> np.ndarray:
    """Non-dominated sorting: ``[n]`` int, 0 for the front, 1 for the front of the rest...

    Rows with a non-finite value get rank -1. Vectorised: one dominance matrix ``[n, n]`` (built in
    chunks), then one peel per front, each a column sum.

    Args:
        values: ``[n, K]`` metric values.
        directions: per metric ``"maximize"`` or ``"minimize"``; default all maximised.
    """
    Y = _signed(values, directions)
    ok = np.isfinite(Y).all(axis=1)
    ranks = np.full(Y.shape[0], -1, dtype=np.int64)
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return ranks
    D = _dominance(Y[idx])
    count = D.sum(axis=0)  # how many rows dominate each row
    left = np.ones(idx.size, dtype=bool)
    rank = 0
    while left.any():
        front = left & (count == 0)
        ranks[idx[front]] = rank
        left &= ~front
        count = count - D[front].sum(axis=0)
        rank += 1
    return ranks


@dataclass(frozen=True)
class MetricEstimate:
    """A metric's estimate with its 95% interval."""

    value: float
    low: float
    high: float

    def to_dict(self) -> dict[str, Any]:
        return jsonable({"value": self.value, "low": self.low, "high": self.high})


@dataclass(frozen=True)
class ParetoPoint:
    """One trial as a point of metric space.

    Args:
        trial: trial number.
        weights: full weight vector, task -> weight (the pinned task has 1).
        metrics: metric -> estimate with interval, for every metric the trial recorded.
        infeasible: why it breaks a guardrail (``""``: feasible).
    """

    trial: int
    weights: Mapping[str, float]
    metrics: Mapping[str, MetricEstimate]
    infeasible: str = ""

    def lift(self, control: Mapping[str, MetricEstimate]) -> dict[str, float]:
        """Relative lift over ``control`` of every metric both have (NaN for a zero control)."""
        out = {}
        for m, c in control.items():
            if m in self.metrics:
                out[m] = self.metrics[m].value / c.value - 1.0 if c.value else float("nan")
        return out


@dataclass(frozen=True)
class ParetoFront:
    """The front of a Pareto study, with what it was built from.

    Args:
        study_name: the study.
        metrics: the ``K`` metrics of the front.
        directions: per metric ``"maximize"`` or ``"minimize"``.
        points: the non-dominated feasible trials, by the first metric, best first.
        trials: every completed trial (feasible or not), by number.
        control: control's estimates (search split), when known.
        n_failed: trials that did not complete (e.g. a non-finite estimate).
    """

    study_name: str
    metrics: tuple[str, ...]
    directions: tuple[str, ...]
    points: tuple[ParetoPoint, ...]
    trials: tuple[ParetoPoint, ...]
    control: Mapping[str, MetricEstimate] | None = None
    n_failed: int = 0

    @property
    def n_infeasible(self) -> int:
        return sum(1 for t in self.trials if t.infeasible)

    def distinct(self) -> list[tuple[ParetoPoint, list[int]]]:
        """Front points with distinct weight vectors, each with the numbers of the other
        front trials that have the same weights (e.g. CEM draws clipped to a corner)."""
        groups: dict[tuple[float, ...], tuple[ParetoPoint, list[int]]] = {}
        for p in self.points:
            key = tuple(p.weights.values())
            if key in groups:
                groups[key][1].append(p.trial)
            else:
                groups[key] = (p, [])
        return list(groups.values())

    def values(self, points: Sequence[ParetoPoint] | None = None) -> np.ndarray:
        """``[n, K]`` metric values of ``points`` (default the front)."""
        pts = self.points if points is None else points
        return np.array([[p.metrics[m].value for m in self.metrics] for p in pts],
                        dtype=np.float64).reshape(len(pts), len(self.metrics))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: the front's distinct points with weights, estimates, lift vs
        control and the other front trials with the same weights."""
        control = dict(self.control or {})

        def point(p: ParetoPoint, same: list[int]) -> dict[str, Any]:
            d: dict[str, Any] = {"trial": p.trial, "weights": dict(p.weights),
                                 "metrics": {m: p.metrics[m].to_dict() for m in self.metrics},
                                 "same_weights": same}
            if control:
                d["lift_vs_control"] = {m: v for m, v in p.lift(control).items()
                                        if m in self.metrics}
            return d

        return jsonable({
            "study": self.study_name,
            "metrics": list(self.metrics),
            "directions": list(self.directions),
            "n_trials": len(self.trials),
            "n_feasible": len(self.trials) - self.n_infeasible,
            "n_infeasible": self.n_infeasible,
            "n_failed": self.n_failed,
            "control": {m: c.to_dict() for m, c in control.items() if m in self.metrics},
            "n_front_trials": len(self.points),
            "front": [point(p, same) for p, same in self.distinct()],
        })


def _point(t: FrozenTrial, space: FusionSpace) -> ParetoPoint:
    ua = t.user_attrs
    metrics = {}
    for key, v in ua.items():
        if key.startswith("metric:"):
            m = key[7:]
            metrics[m] = MetricEstimate(float(v), float(ua.get(f"metric_low:{m}", np.nan)),
                                        float(ua.get(f"metric_high:{m}", np.nan)))
    weights = dict(zip(space.tasks, space.to_weights(t.params).tolist(), strict=True))
    return ParetoPoint(t.number, weights, metrics, str(ua.get(INFEASIBLE) or ""))


def front_of_trials(study: optuna.Study, space: FusionSpace, metrics: Sequence[str],
                    directions: Sequence[str],
                    control: Mapping[str, MetricEstimate] | None = None) -> ParetoFront:
    """The Pareto front of the study's completed, guardrail-feasible trials on ``metrics``.

    Every trial's metrics come from its user attrs ``metric:<m>`` (with ``metric_low:<m>``,
    ``metric_high:<m>``), so any fusiontune study works, on any of its metrics. Infeasible
    trials are kept in ``trials`` (plots show them) but never join the front.

    Raises:
        ValueError: a metric the study's trials did not record.
    """
    done = sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
                  key=lambda t: t.number)
    n_failed = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
    points = [_point(t, space) for t in done]
    if points:
        missing = sorted({m for p in points for m in metrics if m not in p.metrics})
        if missing:
            have = sorted(set.intersection(*(set(p.metrics) for p in points)))
            raise ValueError(f"the trials of study {study.study_name!r} do not record "
                             f"metric(s) {missing}; they record {have}")
    feasible = [p for p, t in zip(points, done, strict=True) if is_feasible_complete(t)]
    Y = np.array([[p.metrics[m].value for m in metrics] for p in feasible],
                 dtype=np.float64).reshape(len(feasible), len(metrics))
    mask = pareto_mask(Y, directions)
    first = 1.0 if directions[0] == "maximize" else -1.0
    front = sorted((p for p, on in zip(feasible, mask, strict=True) if on),
                   key=lambda p: (-first * p.metrics[metrics[0]].value, p.trial))
    return ParetoFront(study.study_name, tuple(metrics), tuple(directions), tuple(front),
                       tuple(points), control, n_failed)
