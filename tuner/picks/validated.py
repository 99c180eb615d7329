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

from simulator.replay import OBJECTIVE, Replay
from simulator.report import ABReport, ab_report

__all__ = ["ValidatedPick", "fold_replays", "validated_pick"]


@dataclass(frozen=True)
class ValidatedPick:
    """The outcome of :func:`validated_pick`.

    Args:
        weights: ``[T]`` the chosen candidate's weights.
        candidate: its index among the candidates.
        choose_lifts: ``[C]`` every candidate's objective lift over control on the choose
            fold (what ranked them; biased upward for the winner, so never reported).
        report: control vs the chosen candidate on the report fold: every metric with
            its paired interval, unbiased for the chosen vector.
        n_choose: requests of the choose fold.
    """

    weights: np.ndarray
    candidate: int
    choose_lifts: np.ndarray
    report: ABReport
    n_choose: int

    @property
    def beats_control(self) -> bool:
        """Whether the report fold's objective lift interval lies above 0."""
        return bool(self.report.row(OBJECTIVE).lift.low > 0)


def fold_replays(replay: Replay) -> tuple[Replay, Replay]:
    """The choose fold (first half of the requests) and the report fold (the rest) of a
    split's replay. A split's rows are a seeded permutation of the log, so halves are
    random and need no seed of their own.

    Raises:
        ValueError: a split of fewer than 4 requests.
    """
    n = replay.feedback.n_requests
    if n < 4:
        raise ValueError(f"the held-out split has {n} requests; need at least 4 to cut "
                         "into a choose and a report fold")
    h = n // 2
    return replay.subset(slice(0, h)), replay.subset(slice(h, n))


def validated_pick(replay: Replay, candidates: np.ndarray, control: np.ndarray,
                   objective: Mapping[str, float]) -> ValidatedPick:
    """Choose among ``candidates [C, T]`` on one fold of ``replay``'s requests, report on
    the other.

    Args:
        replay: the replay of the held-out split.
        candidates: full weight vectors, e.g. the strategy's picks after its last rounds.
        control: ``[T]`` control weights.
        objective: task -> weight of the objective.

    Raises:
        ValueError: no candidate, or a split too small to cut in two.
    """
    candidates = np.atleast_2d(np.asarray(candidates, dtype=np.float64))
    control = np.asarray(control, dtype=np.float64)
    if len(candidates) == 0:
        raise ValueError("validated_pick needs at least one candidate")
    choose, report = fold_replays(replay)
    est = choose.evaluate(np.vstack([control[None], candidates]), objective)
    values = est.value[:, est.metrics.index(OBJECTIVE)]
    lifts = values[1:] - values[0]
    best = int(np.argmax(np.where(np.isfinite(lifts), lifts, -np.inf)))
    return ValidatedPick(candidates[best].copy(), best, lifts,
                         ab_report(report, control, candidates[best], objective),
                         choose.feedback.n_requests)
