"""``search personalise`` on a streamed log (a folder of Parquet files, or ``--stream``).

The weight model's arrays are built chunk by chunk of the search split (the log is never
held whole: only the surrogate's own arrays are, as for a log held whole), and its policy
is judged on the held-out split in one pass: each chunk's requests get their weights from
the model, the global pick and the control, and leave only sums
(:class:`~simulator.population.PopulationSums`, keyed by request id), as a streamed search
does. The paired lifts come from those sums' bootstrap resamples, so a streamed study
needs the percentile bootstrap (the default interval); the delta-method intervals of a
log held whole need every request's terms at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from simulator.fusion import make_fusion
from simulator.intervals import BootstrapInterval
from simulator.logs import LoggedTraffic
from simulator.policies import TopKPolicy
from simulator.population import PopulationSums, metric_names
from simulator.replay import Replay, objective_matrix
from tuner.evaluation.guardrails import parse_guardrails
from tuner.evaluation.objective import streamed_guardrail_reasons
from tuner.evaluation.search_data import make_interval
from tuner.evaluation.streamed import StreamedWorkspace
from tuner.segments._arrays import chunk_arrays
from tuner.segments._clusters import AnySegmentation
from tuner.segments._learned import LogArrays
from tuner.segments._replay import PersonalisedEstimate

__all__ = ["check_bootstrap", "concatenate_arrays", "streamed_arrays", "streamed_estimate",
           "streamed_stratified"]


def concatenate_arrays(parts: Sequence[LogArrays]) -> LogArrays:
    """The arrays of several parts of a split, their requests in order."""
    def cat(field: str) -> np.ndarray:
        return np.concatenate([getattr(p, field) for p in parts])

    return LogArrays(transformed=cat("transformed"), reward=cat("reward"), shown=cat("shown"),
                     logging_exposure=cat("logging_exposure"),
                     slot_examination=cat("slot_examination"),
                     examination=parts[0].examination, features=cat("features"))


def streamed_arrays(ws: StreamedWorkspace, part: str, features: Sequence[str]) -> LogArrays:
    """What the surrogate reads of split ``part``, built chunk by chunk.

    Raises:
        ValueError: a ragged log, one without every slot's propensities, an unknown
            feature (see :func:`~tuner.segments._personalise.replay_arrays`), or an empty
            split.
    """
    fusion = make_fusion(ws.settings.formula)
    parts = [chunk_arrays(chunk.feedback, fusion.prepare(chunk.scores), traffic,
                          ws.settings.objective, features)
             for chunk, traffic in ws.chunks(part).with_traffic(features=True)]
    if not parts:
        raise ValueError(f"the {part} split of {ws.settings.logs} has no requests")
    return concatenate_arrays(parts)


def check_bootstrap(ws: StreamedWorkspace) -> BootstrapInterval:
    """The study's interval, which must be the percentile bootstrap on a streamed log.

    Raises:
        ValueError: another interval, naming what works.
    """
    s = ws.settings
    interval = make_interval(s.interval, s.n_bootstrap, s.split_seed)
    if not isinstance(interval, BootstrapInterval):
        raise ValueError(f"search personalise on a streamed log makes the model's paired lift "
                         f"over the global pick from bootstrap resamples of sums; study "
                         f"interval {s.interval!r} needs every request's terms at once. Use a "
                         "study with --interval bootstrap, or a log held whole (one Parquet "
                         "file without --stream)")
    return interval


def streamed_estimate(ws: StreamedWorkspace,
                      weights_of: Callable[[LoggedTraffic], np.ndarray],
                      global_weights: np.ndarray, control: np.ndarray, contrasts: np.ndarray,
                      split: str) -> tuple[PersonalisedEstimate, str]:
    """(policy, global, control) on ``split``, in one pass that leaves sums; the policy
    gives each chunk's requests their weights, ``weights_of(traffic) -> [c, S]`` (a weight
    model on the chunk's features, a segment table's rows).

    Returns:
        The estimates with the ``contrasts``' bootstrap intervals, and why the policy
        breaks a guardrail (``""``: none).

    Raises:
        ValueError: the study's interval is not the percentile bootstrap, or the split
            has no requests.
    """
    s = ws.settings
    interval = check_bootstrap(ws)
    combine = objective_matrix(ws.tasks, s.objective)
    total: PopulationSums | None = None
    for replay, traffic in _chunk_replays(ws, split, interval):
        r = traffic.n_requests
        w = np.stack([np.asarray(weights_of(traffic), dtype=np.float64),
                      np.tile(np.asarray(global_weights, dtype=np.float64), (r, 1)),
                      np.tile(control, (r, 1))])  # [3, c, S]
        part = PopulationSums.of(replay.request_terms(w), interval, combine,
                                 replay.request_ids)
        total = part if total is None else total + part
    if total is None:
        raise ValueError(f"the {split} split of {s.logs} has no requests")
    est = total.estimate(interval, metric_names(ws.tasks, s.objective), combine)
    low, high = interval.bounds_from(total.terms, contrasts)
    rails = parse_guardrails(s.guardrails, ws.tasks)
    broken = (streamed_guardrail_reasons(total.take(np.array([2, 0])), ws.replay(split),
                                         rails)[0] if rails else "")
    return (PersonalisedEstimate(est.metrics, est.value, est.low, est.high,
                                 contrasts @ est.value, low, high, interval.level, int(est.n)),
            broken)


def streamed_stratified(ws: StreamedWorkspace, segmentation: AnySegmentation,
                        policies: np.ndarray, contrasts: np.ndarray, split: str
                        ) -> tuple[PersonalisedEstimate, str]:
    """:meth:`~tuner.segments._replay.SegmentedReplay.personalised` on a streamed split, in
    one pass that leaves each segment's sums.

    The values are those of the split held whole, ``V = sum_s f_s V_s`` with ``f_s`` the
    segment's share of the split's requests. The intervals (of the values and of the paired
    ``contrasts``) are the percentile bootstrap of the same combination of each segment's
    resamples (keyed by request id), where the split held whole uses the delta method: the
    per-request influence values of several policies at once are not kept by sums.

    Args:
        policies: ``[P, K, S]`` each policy's weights per segment; the guardrails are
            judged on policy 0 against the last (the control), as the search judges them.

    Returns:
        The estimate, and why policy 0 breaks a guardrail (``""``: none).

    Raises:
        ValueError: as :func:`streamed_estimate`.
    """
    s = ws.settings
    interval, combine = check_bootstrap(ws), objective_matrix(ws.tasks, s.objective)
    w = np.asarray(policies, dtype=np.float64)  # [P, K, S]
    parts: list[PopulationSums | None] = [None] * segmentation.n_segments
    for replay, traffic in _chunk_replays(ws, split, interval):
        assign = segmentation.assign_log(traffic)
        for g in np.unique(assign):
            sub = replay.subset(np.flatnonzero(assign == g))
            part = PopulationSums.of(sub.terms(w[:, g]), interval, combine, sub.request_ids)
            prev = parts[g]
            parts[g] = part if prev is None else prev + part
    held = [(g, p) for g, p in enumerate(parts) if p is not None]
    if not held:
        raise ValueError(f"the {split} split of {s.logs} has no requests")
    n = sum(p.terms.n for _, p in held)
    value = sum(p.terms.n / n * p.terms.values() for _, p in held)
    draws = sum(p.terms.n / n * p.terms.draws() for _, p in held)  # [B, P, M]
    low, high = interval.percentile_bounds(np.asarray(draws))
    c_low, c_high = interval.percentile_bounds(np.einsum("qp,bpm->bqm", contrasts, draws))
    total = held[0][1]
    for _, p in held[1:]:
        total = total + p
    rails = parse_guardrails(s.guardrails, ws.tasks)
    broken = (streamed_guardrail_reasons(total.take(np.array([len(w) - 1, 0])),
                                         ws.replay(split), rails)[0] if rails else "")
    value = np.asarray(value)
    return (PersonalisedEstimate(metric_names(ws.tasks, s.objective), value, low, high,
                                 contrasts @ value, c_low, c_high, interval.level, int(n)),
            broken)


def _chunk_replays(ws: StreamedWorkspace, split: str, interval: BootstrapInterval
                   ) -> Iterator[tuple[Replay, LoggedTraffic]]:
    """Each chunk of ``split`` (with its features) as a replay of the study's settings."""
    s = ws.settings
    fusion, estimator = make_fusion(s.formula), s.make_estimator()
    policy = TopKPolicy(len(ws.examination))
    for chunk, traffic in ws.chunks(split).with_traffic(features=True):
        yield Replay(chunk.feedback, chunk.scores, ws.score_tasks, fusion, policy, estimator,
                     interval, request_ids=chunk.request_ids), traffic
