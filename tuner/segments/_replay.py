"""Replays of the segments of a log, and estimates of personalised (per-segment) policies.

A segment's value depends only on its own requests, so a per-segment search replays each
segment's requests with that segment's population alone: one generation of every segment
costs one pass over the log, as a global generation does. A personalised policy (weights
``w_s`` on the requests of segment ``s``) is valued by the stratified estimate
``V = sum_s f_s V_s`` (``f_s``: the segment's share of requests, ``V_s`` the estimator on
the segment's requests); with one segment it is the replay's own estimate.

Intervals are the delta method's: each segment's per-request influence values
(:func:`simulator.intervals.influence`) give ``Var V = sum_s f_s^2 Var(infl_s) / R_s``,
and a paired contrast (personalised minus global on the same requests) takes the
difference of the influence values request by request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from simulator.estimators import RequestTerms
from simulator.intervals import influence, point_values
from simulator.replay import OBJECTIVE, Replay, objective_matrix

__all__ = ["VERSUS_GLOBAL_AND_CONTROL", "PersonalisedEstimate", "SegmentedReplay",
           "per_request_estimate", "sub_replay", "terms_estimate"]

VERSUS_GLOBAL_AND_CONTROL = np.array([[1.0, -1.0, 0.0], [1.0, 0.0, -1.0], [0.0, 1.0, -1.0]])
"""Contrasts of the policies (personalised, global, control): personalised - global,
personalised - control and global - control, each paired on the same requests."""


def sub_replay(replay: Replay, requests: np.ndarray) -> Replay:
    """The replay of the requests at row indices ``requests`` ``[R']`` (sorted) of ``replay``."""
    return replay.subset(np.sort(np.asarray(requests, dtype=np.int64)))


@dataclass(frozen=True)
class PersonalisedEstimate:
    """Stratified estimates of ``P`` personalised policies, with paired contrasts.

    Args:
        metrics: metric names (tasks, then ``"objective"``).
        value: ``[P, M]`` point estimates.
        low, high: ``[P, M]`` interval ends.
        contrast_value: ``[Q, M]`` point estimates of the contrasts asked for.
        contrast_low, contrast_high: ``[Q, M]`` their interval ends.
        level: confidence level.
        n: requests.
    """

    metrics: tuple[str, ...]
    value: np.ndarray
    low: np.ndarray
    high: np.ndarray
    contrast_value: np.ndarray
    contrast_low: np.ndarray
    contrast_high: np.ndarray
    level: float
    n: int

    def metric(self, name: str = OBJECTIVE) -> int:
        return self.metrics.index(name)


class SegmentedReplay:
    """One replay per segment of a log.

    Args:
        replay: the replay of the whole split.
        segments: ``[R]`` segment of each request, in ``0..K-1``.
        n_segments: ``K`` (a segment may be empty on another split than the one its
            edges came from; it then carries no weight).

    Example:
        >>> sr = SegmentedReplay(replay, segmentation.assign_log(traffic),  # doctest: +SKIP
        ...                      segmentation.n_segments)
    """

    def __init__(self, replay: Replay, segments: np.ndarray, n_segments: int) -> None:
        segments = np.asarray(segments, dtype=np.int64)
        if segments.shape != (replay.feedback.n_requests,):
            raise ValueError(f"segments must be [R] = [{replay.feedback.n_requests}], got "
                             f"{segments.shape}")
        if segments.size and (segments.min() < 0 or segments.max() >= n_segments):
            raise ValueError(f"segments must be in 0..{n_segments - 1}")
        self.replay = replay
        self.segments = segments
        self.n_segments = int(n_segments)
        self.requests = [np.flatnonzero(segments == s) for s in range(n_segments)]
        self.replays: list[Replay | None] = [
            sub_replay(replay, idx) if idx.size else None for idx in self.requests]

    @property
    def shares(self) -> np.ndarray:
        """``[K]`` share of the requests in each segment."""
        return np.array([idx.size for idx in self.requests], dtype=np.float64) / max(
            1, self.segments.size)

    def segment(self, s: int) -> Replay:
        """The replay of segment ``s``.

        Raises:
            ValueError: the segment has no request in this split.
        """
        rep = self.replays[s]
        if rep is None:
            raise ValueError(f"segment {s} has no request in this split")
        return rep

    def expected_events(self, weights: np.ndarray, objective: Mapping[str, float]
                        ) -> np.ndarray:
        """``[K]`` expected events of the objective behind each segment's estimate of
        ``weights`` ``[S]`` (0 for an empty segment)."""
        combine = objective_matrix(self.replay.feedback.tasks, objective)
        out = np.zeros(self.n_segments)
        for s, rep in enumerate(self.replays):
            if rep is not None:
                out[s] = rep.terms(np.atleast_2d(weights)).expected_events(combine)[0, -1]
        return out

    def personalised(
        self,
        policies: Sequence[np.ndarray],
        objective: Mapping[str, float],
        contrasts: np.ndarray | None = None,
        level: float = 0.95,
    ) -> PersonalisedEstimate:
        """Stratified estimates of personalised policies and of contrasts between them.

        Args:
            policies: ``P`` arrays ``[K, S]`` (weights per segment); a global policy is
                one row repeated.
            objective: task -> weight of the business objective.
            contrasts: ``[Q, P]`` rows ``c`` asking for ``sum_p c[p] V_p`` (e.g.
                ``[1, -1, 0]``: policy 0 minus policy 1), paired on the same requests.
            level: confidence level of the (normal, delta-method) intervals.
        """
        w = np.stack([np.asarray(p, dtype=np.float64) for p in policies])  # [P, K, S]
        if w.ndim != 3 or w.shape[1] != self.n_segments:
            raise ValueError(f"each policy must be [K, S] with K = {self.n_segments}, "
                             f"got {w.shape[1:]}")
        combine = objective_matrix(self.replay.feedback.tasks, objective)
        strata = [(float(f), rep.terms(w[:, s])) for s, (f, rep) in enumerate(
            zip(self.shares, self.replays, strict=True)) if rep is not None]
        return _stratified(strata, combine, self.replay.feedback.tasks, len(w), contrasts,
                           level, int(self.segments.size))


def per_request_estimate(
    replay: Replay,
    policies: np.ndarray,
    objective: Mapping[str, float],
    contrasts: np.ndarray | None = None,
    level: float = 0.95,
) -> PersonalisedEstimate:
    """Estimates of policies whose weights vary per request, with paired contrasts.

    The estimate a :class:`SegmentedReplay` gives with one segment, for weights that may
    differ on every request (a learned weight model ``w(x_r)``): the replay's own
    estimator over :meth:`Replay.request_terms`, with delta-method intervals.

    Args:
        replay: the split's replay.
        policies: ``[P, R, S]`` the weights of each policy on each request.
        objective: task -> weight of the business objective.
        contrasts: ``[Q, P]`` rows asking for ``sum_p c[p] V_p``, paired on the requests.
        level: confidence level.
    """
    return terms_estimate(replay.request_terms(policies), replay.feedback.tasks, objective,
                          contrasts, level)


def terms_estimate(terms: RequestTerms, tasks: tuple[str, ...],
                   objective: Mapping[str, float], contrasts: np.ndarray | None = None,
                   level: float = 0.95) -> PersonalisedEstimate:
    """:func:`per_request_estimate` from request terms already at hand (``tasks``: their
    task order)."""
    combine = objective_matrix(tasks, objective)
    return _stratified([(1.0, terms)], combine, tasks, terms.numerator.shape[0], contrasts,
                       level, terms.numerator.shape[1])


def _stratified(strata: Sequence[tuple[float, RequestTerms]], combine: np.ndarray,
                tasks: tuple[str, ...], n_policies: int, contrasts: np.ndarray | None,
                level: float, n: int) -> PersonalisedEstimate:
    """``V = sum_s f_s V_s`` over strata ``(f_s, terms_s)`` of ``P`` policies, with
    delta-method intervals of the values and of the paired contrasts."""
    c = np.zeros((0, n_policies)) if contrasts is None else np.atleast_2d(contrasts)
    m = combine.shape[1]
    value = np.zeros((n_policies, m))
    var = np.zeros((n_policies, m))
    c_value = np.zeros((len(c), m))
    c_var = np.zeros((len(c), m))
    for f, terms in strata:
        v = point_values(terms, combine)  # [P, M]
        infl = influence(terms, combine)  # [P, R_s, M]
        r_s = infl.shape[1]
        value += f * v
        c_value += f * (c @ v)
        if r_s > 1:
            var += f**2 * infl.var(axis=1, ddof=1) / r_s
            ci = np.einsum("qp,prm->qrm", c, infl)
            c_var += f**2 * ci.var(axis=1, ddof=1) / r_s
    from scipy import stats  # here: importing scipy.stats costs ~0.5 s at start

    z = float(stats.norm.ppf(0.5 + level / 2.0))
    se, c_se = np.sqrt(var), np.sqrt(c_var)
    return PersonalisedEstimate(tasks + (OBJECTIVE,), value, value - z * se, value + z * se,
                                c_value, c_value - z * c_se, c_value + z * c_se, level, n)
