"""A final pick chosen on held-out requests and reported on others (split-sample).

The strategy's last means are candidates of nearly equal merit on the search split; which
of them is best is a question for requests the search never saw. Choosing on the whole
held-out split and then reporting its estimate there brings the winner's curse back, so
the held-out requests are cut in two fixed folds: the candidate with the best paired
lift over control on fold ``A`` is chosen, and its lift is estimated, with its paired
interval, on fold ``B`` alone, which played no part in the choice (so that estimate is
unbiased for the chosen vector). When that interval does not clear 0 the pick is control.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from simulator.estimators import RequestTerms
from simulator.estimators._estimate import Estimate
from simulator.intervals import point_values
from simulator.replay import Replay, objective_matrix

__all__ = ["ValidatedPick", "fold_rows", "validated_pick"]

FOLD_NAMES = ("choose", "report")


@dataclass(frozen=True)
class ValidatedPick:
    """The outcome of :func:`validated_pick`.

    Args:
        weights: ``[T]`` the exported weights: the chosen candidate, or control.
        candidate: index of the chosen candidate (whether or not it beat control).
        beats_control: whether its reported lift's interval lies above 0.
        lift: the chosen candidate's lift over control on the report fold (paired).
        value: its objective on the report fold.
        choose_lifts: ``[C]`` every candidate's lift on the choose fold (what ranked them).
        n_choose: requests of the choose fold.
        n_report: requests of the report fold.
    """

    weights: np.ndarray
    candidate: int
    beats_control: bool
    lift: Estimate
    value: Estimate
    choose_lifts: np.ndarray
    n_choose: int
    n_report: int


def fold_rows(n_requests: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the choose and report folds of a split of ``n_requests``: even and odd rows
    (a split's rows are already a seeded permutation of the log, so this is random and
    needs no seed of its own)."""
    rows = np.arange(n_requests)
    return rows[0::2], rows[1::2]


def _rows(terms: RequestTerms, rows: np.ndarray) -> RequestTerms:
    """The terms of a subset of requests; label moments are dropped (events unknown)."""
    share = len(rows) / terms.numerator.shape[1]
    return RequestTerms(
        numerator=terms.numerator[:, rows],
        denominator=None if terms.denominator is None else terms.denominator[:, rows],
        scale=terms.scale,
        weight_sum=terms.weight_sum * share,
        weight_sq_sum=terms.weight_sq_sum * share,
        offset=None if terms.offset is None else terms.offset[:, rows],
    )


def validated_pick(replay: Replay, candidates: np.ndarray, control: np.ndarray,
                   objective: Mapping[str, float]) -> ValidatedPick:
    """Choose among ``candidates [C, T]`` on one fold of ``replay``'s requests, report on
    the other.

    Args:
        replay: the replay of the held-out split.
        candidates: full weight vectors, e.g. the strategy's means after its last rounds.
        control: ``[T]`` control weights.
        objective: task -> weight of the objective.

    Raises:
        ValueError: no candidate, or a split too small to cut in two.
    """
    candidates = np.atleast_2d(np.asarray(candidates, dtype=np.float64))
    control = np.asarray(control, dtype=np.float64)
    if len(candidates) == 0:
        raise ValueError("validated_pick needs at least one candidate")
    n = replay.feedback.n_requests
    if n < 4:
        raise ValueError(f"the held-out split has {n} requests; need at least 4 to cut "
                         "into a choose and a report fold")
    terms = replay.terms(np.vstack([control[None], candidates]))
    combine = objective_matrix(replay.feedback.tasks, objective)[:, -1:]
    choose, report = fold_rows(n)
    values = point_values(_rows(terms, choose), combine)[:, 0]  # [1 + C]
    lifts = values[1:] - values[0]
    best = int(np.argmax(np.where(np.isfinite(lifts), lifts, -np.inf)))
    pair = _rows(terms.take(np.array([0, best + 1])), report)
    v = point_values(pair, combine)[:, 0]
    low, high = replay.interval.bounds(pair, combine)
    d_low, d_high = replay.interval.bounds(pair, combine, np.array([[-1.0, 1.0]]))
    level = replay.interval.level
    ess = float(np.min(pair.ess))
    lift = Estimate(float(v[1] - v[0]), float(d_low[0, 0]), float(d_high[0, 0]), ess,
                    len(report), level, float("nan"))
    value = Estimate(float(v[1]), float(low[1, 0]), float(high[1, 0]), float(pair.ess[1]),
                     len(report), level, float("nan"))
    beats = bool(lift.low > 0)
    return ValidatedPick(candidates[best] if beats else control, best, beats, lift, value,
                         lifts, len(choose), len(report))
