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

from collections.abc import Callable, Sequence

import numpy as np

from simulator.estimators import make_estimator
from simulator.fusion import make_fusion
from simulator.intervals import BootstrapInterval
from simulator.policies import TopKPolicy
from simulator.population import PopulationSums, metric_names
from simulator.replay import Replay, objective_matrix
from tuner.evaluation.guardrails import parse_guardrails
from tuner.evaluation.objective import streamed_guardrail_reasons
from tuner.evaluation.search_data import make_interval
from tuner.evaluation.streamed import StreamedWorkspace
from tuner.segments._arrays import chunk_arrays, feature_matrix
from tuner.segments._learned import LogArrays
from tuner.segments._replay import PersonalisedEstimate

__all__ = ["check_bootstrap", "concatenate_arrays", "streamed_arrays", "streamed_estimate"]


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


def streamed_estimate(ws: StreamedWorkspace, weights_of: Callable[[np.ndarray], np.ndarray],
                      features: Sequence[str], global_weights: np.ndarray,
                      control: np.ndarray, contrasts: np.ndarray, split: str
                      ) -> tuple[PersonalisedEstimate, str, np.ndarray]:
    """(model, global, control) on ``split``, in one pass that leaves sums.

    Returns:
        The estimates with the ``contrasts``' bootstrap intervals, why the model breaks a
        guardrail (``""``: none), and the split's model inputs ``[R, F]`` (read on the way).

    Raises:
        ValueError: the study's interval is not the percentile bootstrap, or the split
            has no requests.
    """
    s = ws.settings
    interval = check_bootstrap(ws)
    fusion, estimator = make_fusion(s.formula), make_estimator(s.estimator,
                                                               s.estimator_params)
    policy = TopKPolicy(len(ws.examination))
    combine = objective_matrix(ws.tasks, s.objective)
    total: PopulationSums | None = None
    rows = []
    for chunk, traffic in ws.chunks(split).with_traffic(features=True):
        x = feature_matrix(traffic, features)
        rows.append(x)
        r = len(x)
        w = np.stack([np.asarray(weights_of(x), dtype=np.float64),
                      np.tile(np.asarray(global_weights, dtype=np.float64), (r, 1)),
                      np.tile(control, (r, 1))])  # [3, c, S]
        replay = Replay(chunk.feedback, chunk.scores, ws.score_tasks, fusion, policy,
                        estimator, interval, request_ids=chunk.request_ids)
        part = PopulationSums.of(replay.request_terms(w), interval, combine,
                                 chunk.request_ids)
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
            broken, np.concatenate(rows))
