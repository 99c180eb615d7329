"""Streaming replay: a population evaluated chunk by chunk, keeping sums only.

A chunk of whole requests (its log, its scores) goes in; :class:`PopulationSums` come
out: the interval's sufficient statistics (:class:`~simulator.intervals.TermSums`) and
the sums behind the effective sample size and the effective events. Sums of chunks add,
so the chunks may come from any number of files, in any order, read by one process or
by many workers; the estimate and its interval are those of the log held whole (to
floating-point summation error), since the bootstrap weights are keyed by request id.
Peak memory is set by the chunk, not by the log.

An estimator that needs the whole log (``prepare``: a reward model calibrated on it) or
the whole population on the whole log (``finish``: pooling across weight vectors, as
``pooled_dr`` does) cannot be reduced from per-chunk sums: :func:`check_streamable`
refuses it.

Example:
    >>> from simulator.estimators import SNIPS, SlateFeedback
    >>> from simulator.fusion import MultiplicativeFusion
    >>> from simulator.policies import TopKPolicy
    >>> from simulator.worlds import MarketplaceConfig, MarketplaceWorld
    >>> world = MarketplaceWorld(MarketplaceConfig(n_requests=300))
    >>> log = world.generate()
    >>> scores = world.true_probabilities(log)[..., [0, 2]]
    >>> chunks = [ReplayChunk(log.request_ids[a:a + 100],
    ...                       SlateFeedback.from_traffic(log.take(np.arange(a, a + 100))),
    ...                       scores[a:a + 100]) for a in (0, 100, 200)]
    >>> replay = StreamedReplay(lambda: iter(chunks), log.tasks, ("click", "like"),
    ...                         MultiplicativeFusion(), TopKPolicy(5), SNIPS())
    >>> replay.evaluate(np.array([[1.0, 0.5]]), {"click": 1.0}).value.shape
    (1, 4)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from simulator.estimators._base import BaseEstimator, RequestTerms, SlateFeedback
from simulator.fusion._base import BaseFusion
from simulator.intervals import BaseInterval, BootstrapInterval, TermSums
from simulator.policies import BasePolicy
from simulator.replay import OBJECTIVE, PopulationEstimate, objective_matrix

__all__ = ["PopulationSums", "ReplayChunk", "StreamedReplay", "check_streamable",
           "chunk_sums"]


def check_streamable(estimator: BaseEstimator) -> None:
    """Raise unless ``estimator``'s terms can be reduced from per-chunk sums.

    Raises:
        ValueError: an estimator with its own ``prepare`` (it learns from the whole log)
            or ``finish`` (it pools the whole population), naming it.
    """
    cls = type(estimator)
    whole = [name for name in ("prepare", "finish")
             if getattr(cls, name) is not getattr(BaseEstimator, name)]
    if whole:
        raise ValueError(
            f"estimator {estimator.name!r} needs the whole log at once ({' and '.join(whole)}: "
            "it calibrates on the log or pools the population over it), so it cannot be "
            "streamed; read the log into memory (a single file, without --stream) or "
            "choose another estimator (snips, ips, dr, ...)")


@dataclass(frozen=True)
class ReplayChunk:
    """Whole requests of a log, with their scores.

    Args:
        request_ids: ``[c]`` the requests' ids (the keys of their bootstrap weights).
        feedback: the log's feedback on them.
        scores: ``[c, N, S]`` per-task model scores, aligned with the log.
    """

    request_ids: np.ndarray
    feedback: SlateFeedback
    scores: np.ndarray


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


def chunk_sums(chunk: ReplayChunk, weights: np.ndarray, fusion: BaseFusion,
               policy: BasePolicy, estimator: BaseEstimator, interval: BaseInterval,
               combine: np.ndarray) -> PopulationSums:
    """The sums of one chunk for validated weights ``[P, S]``."""
    fused = fusion.fuse(fusion.transform(chunk.scores), weights)  # [P, c, N]
    terms = estimator.policy_terms(chunk.feedback, policy, fused)
    return PopulationSums.of(terms, interval, combine, chunk.request_ids)


def metric_names(tasks: tuple[str, ...], objective: Mapping[str, float] | None
                 ) -> tuple[str, ...]:
    """The metrics of an estimate: the tasks, then the objective when one is given."""
    return tasks + ((OBJECTIVE,) if objective is not None else ())


@dataclass(frozen=True)
class StreamedReplay:
    """Off-policy replay of fused rankings over a log read chunk by chunk.

    Args:
        chunks: called once per evaluation, gives the log's chunks (each of whole
            requests; any order, any cut).
        tasks: the log's label tasks, the order of the feedback's rewards.
        score_tasks: names of the ``S`` score columns, the order of a weight vector.
        fusion: the fusion formula.
        policy: the ranking policy.
        estimator: the off-policy estimator (refused if it needs the whole log).
        interval: how intervals are computed.
    """

    chunks: Callable[[], Iterable[ReplayChunk]]
    tasks: tuple[str, ...]
    score_tasks: tuple[str, ...]
    fusion: BaseFusion
    policy: BasePolicy
    estimator: BaseEstimator
    interval: BaseInterval = BootstrapInterval()

    def __post_init__(self) -> None:
        check_streamable(self.estimator)

    def sums(self, weights: np.ndarray, objective: Mapping[str, float] | None = None
             ) -> PopulationSums:
        """The sums of a population ``[P, S]`` over every chunk."""
        w = self.fusion.validate_weights(weights, self.score_tasks)
        combine = objective_matrix(self.tasks, objective)
        one = functools.partial(chunk_sums, weights=w, fusion=self.fusion, policy=self.policy,
                                estimator=self.estimator, interval=self.interval,
                                combine=combine)
        total: PopulationSums | None = None
        for chunk in self.chunks():
            part = one(chunk)
            total = part if total is None else total + part
        if total is None:
            raise ValueError("the log gave no requests to replay")
        return total

    def evaluate(self, weights: np.ndarray, objective: Mapping[str, float] | None = None
                 ) -> PopulationEstimate:
        """Estimates with intervals of every weight vector of a population."""
        total = self.sums(weights, objective)
        return total.estimate(self.interval, metric_names(self.tasks, objective),
                              objective_matrix(self.tasks, objective))
