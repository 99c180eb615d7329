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

from simulator.estimators._base import BaseEstimator, SlateFeedback
from simulator.fusion._base import BaseFusion
from simulator.intervals import BaseInterval, BootstrapInterval
from simulator.policies import BasePolicy
from simulator.population import PopulationEstimate, PopulationSums, metric_names, objective_matrix

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


def chunk_sums(chunk: ReplayChunk, weights: np.ndarray, fusion: BaseFusion,
               policy: BasePolicy, estimator: BaseEstimator, interval: BaseInterval,
               combine: np.ndarray) -> PopulationSums:
    """The sums of one chunk for validated weights ``[P, S]``."""
    valid = chunk.feedback.valid  # ragged requests: padding is never ranked, as in Replay
    fused = fusion.fuse(fusion.prepare(chunk.scores, valid), weights, valid)  # [P, c, N]
    terms = estimator.policy_terms(chunk.feedback, policy, fused)
    return PopulationSums.of(terms, interval, combine, chunk.request_ids)


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
