"""What the CLI does with segments: ``search run --segment-by``, and the personalised part
of ``search compare`` and ``search export`` (kept here so the shared commands grow by a
few lines only)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from simulator.files import atomic_write
from simulator.replay import MIN_EVENTS
from tuner.evaluation.objective import FusionObjective
from tuner.evaluation.search_data import (
    HOLDOUT,
    SEARCH,
    SearchSettings,
    Workspace,
    control_weights,
)
from tuner.evaluation.streamed import StreamedWorkspace
from tuner.picks.export import ExportedWeights
from tuner.segments._clusters import KMEANS, AnySegmentation, Clusters
from tuner.segments._export import GuardDecision, SegmentTable, guard, with_guardrails
from tuner.segments._personalise import guardrail_breach
from tuner.segments._personalise_streamed import streamed_stratified
from tuner.segments._replay import (
    VERSUS_GLOBAL_AND_CONTROL,
    PersonalisedEstimate,
    SegmentedReplay,
)
from tuner.segments._search import run_segmented, segment_picks, stored_segmentation
from tuner.segments._segmentation import (
    FEATURE_PREFIX,
    QUANTILES,
    Segmentation,
    merge_small,
    request_features,
)
from tuner.segments._streamed import StreamedSegments, split_features
from tuner.study import SearchSpec

__all__ = ["personalised_compare", "run_segments", "segment_export"]


def segment_features(segment_by: str) -> tuple[str, ...]:
    """The features of ``--segment-by f1,f2,...`` (without the ``feature_`` prefix).

    Raises:
        ValueError: none named, or one named twice.
    """
    names = tuple(f.strip().removeprefix(FEATURE_PREFIX) for f in segment_by.split(","))
    if not all(names):
        raise ValueError(f"--segment-by {segment_by!r}: name request-level log features, "
                         "separated by commas (e.g. user_like_rate,user_click_rate)")
    if len(set(names)) != len(names):
        raise ValueError(f"--segment-by {segment_by!r} names a feature twice")
    return names


def _kind(features: tuple[str, ...], kind: str | None) -> str:
    """``--segment-kind`` for ``features``: as given, else quantiles of one feature and
    k-means of several.

    Raises:
        ValueError: quantiles of several features, or an unknown kind.
    """
    if kind not in (None, QUANTILES, KMEANS):
        raise ValueError(f"--segment-kind {kind!r}: use {QUANTILES!r} or {KMEANS!r}")
    if kind == QUANTILES and len(features) != 1:
        raise ValueError(f"--segment-kind quantiles buckets one feature; --segment-by names "
                         f"{len(features)}: use --segment-kind kmeans")
    return kind or (QUANTILES if len(features) == 1 else KMEANS)


def check_segment_options(segment_by: str, kind: str | None) -> tuple[str, ...]:
    """``--segment-by``'s features, checked with ``--segment-kind`` before any trial is run.

    Raises:
        ValueError: a malformed list, or quantiles of several features.
    """
    features = segment_features(segment_by)
    _kind(features, kind)
    return features


def make_segmentation(features: tuple[str, ...], values: np.ndarray, k: int,
                      kind: str | None, seed: int) -> tuple[AnySegmentation, list[str]]:
    """The segmentation of a first run: ``k`` quantile buckets of one feature, or ``k``
    k-means clusters (``kind`` ``"kmeans"``, the default for several features) of the
    rows ``values [R, F]``, with notes for people.

    Raises:
        ValueError: quantiles of several features, or an unknown ``kind``.
    """
    if _kind(features, kind) == QUANTILES:
        return Segmentation.from_quantiles(features[0], values[:, 0], k), []
    return Clusters.from_kmeans(features, values, k, seed)


def run_segments(url: str, study: optuna.Study, search: SearchSpec, segment_by: str | None,
                 k: int, target: int, progress: bool, echo: Callable[[str], None],
                 min_events: float | None = None, kind: str | None = None) -> None:
    """Bring every segment study of ``study`` to ``target`` rounds (making the segmentation
    on a first run: ``k`` quantiles of one feature or ``k`` k-means clusters of several
    (:func:`make_segmentation`) on the search split, too-small segments merged) and print
    each segment's pick. A streamed log (a folder, or ``--stream``) is streamed here too:
    each segment's pass reads its requests of each chunk.

    Raises:
        ValueError: ``segment_by`` or ``kind`` differs from what the study stored.
    """
    settings = SearchSettings.from_dict(search.settings)
    stored = stored_segmentation(study)
    if stored is not None:
        if segment_by is not None and segment_features(segment_by) != stored.features:
            raise ValueError(f"study {study.study_name!r} is segmented by "
                             f"{','.join(stored.features)!r}, not {segment_by!r}")
        if kind is not None and kind != stored.kind:
            raise ValueError(f"study {study.study_name!r} has {stored.kind} segments, not "
                             f"{kind}")
    features = stored.features if stored is not None else segment_features(str(segment_by))
    objective = dict(settings.objective)
    ws: Workspace | StreamedWorkspace
    if settings.streamed:
        ws = StreamedWorkspace(settings)
        x = split_features(ws, SEARCH, features)
        streamed = ws

        def cut(seg: AnySegmentation) -> SegmentedReplay | StreamedSegments:
            return StreamedSegments(streamed, SEARCH, seg)

        def events(seg: AnySegmentation) -> np.ndarray:
            sizes = np.bincount(seg.assign(_of(seg, x)), minlength=seg.n_segments)
            return StreamedSegments(streamed, SEARCH, seg).expected_events(
                control_weights(streamed), objective, sizes)
    else:
        whole = Workspace(settings)
        ws, replay = whole, whole.replay(SEARCH)
        x = request_features(whole.parts[SEARCH], features)

        def held(seg: AnySegmentation) -> SegmentedReplay:
            return SegmentedReplay(replay, seg.assign(_of(seg, x)), seg.n_segments)

        def cut(seg: AnySegmentation) -> SegmentedReplay | StreamedSegments:
            return held(seg)

        def events(seg: AnySegmentation) -> np.ndarray:
            return held(seg).expected_events(control_weights(whole), objective)
    if stored is None:
        seg0, notes = make_segmentation(features, x, k, kind, search.seed)
        seg, merges = merge_small(seg0, events, MIN_EVENTS if min_events is None
                                  else min_events)
        for note in notes + merges:
            echo(note)
    else:
        seg = stored
    base = FusionObjective.for_workspace(ws)
    run_segmented(url, study.study_name, search, seg, cut(seg),
                  lambda rep: dataclasses.replace(base, replay=rep), until=target,
                  progress=progress)
    rows = segment_picks(url, study.study_name, seg.n_segments)
    sizes = np.bincount(seg.assign(_of(seg, x)), minlength=seg.n_segments)
    what = (f"k-means clusters of {', '.join(map(repr, seg.features))}"
            if isinstance(seg, Clusters) else f"{seg.feature!r} (edges {list(seg.edges)})")
    echo(f"{seg.n_segments} segments, {what}, each searched in study "
         f"'{study.study_name}/segment-<i>':")
    for s, w in enumerate(rows):
        echo(f"  segment {s} {seg.describe(s)}: {sizes[s]} requests, weights "
             + ", ".join(f"{t}={v:.4g}" for t, v in zip(ws.score_tasks, w, strict=True)))


def _of(seg: AnySegmentation, x: np.ndarray) -> np.ndarray:
    """What ``seg.assign`` takes of the features ``x [R, F]``: the column of a one-feature
    bucket segmentation, all of them for clusters."""
    return x if isinstance(seg, Clusters) else x[:, 0]


def personalised_compare(ws: Workspace | StreamedWorkspace, study: optuna.Study,
                         global_weights: np.ndarray, url: str, split: str = HOLDOUT
                         ) -> tuple[PersonalisedEstimate, GuardDecision, SegmentTable] | None:
    """Personalised vs global vs control on ``split``, with the paired contrasts
    personalised - global, personalised - control and global - control (None: the study
    has no segments). A streamed log is judged in one pass that leaves each segment's sums
    (:func:`~tuner.segments._personalise_streamed.streamed_stratified`: the same values,
    percentile-bootstrap intervals)."""
    seg = stored_segmentation(study)
    if seg is None:
        return None
    rows = segment_picks(url, study.study_name, seg.n_segments)
    k = seg.n_segments
    policies = [rows, np.tile(global_weights, (k, 1)), np.tile(control_weights(ws), (k, 1))]
    if isinstance(ws, StreamedWorkspace):
        est, broken = streamed_stratified(ws, seg, np.stack(policies),
                                          VERSUS_GLOBAL_AND_CONTROL, split)
        decision = with_guardrails(guard(est, 0), broken)
        return est, decision, SegmentTable(seg, ws.score_tasks, rows,
                                           np.asarray(global_weights), decision)
    sr = SegmentedReplay(ws.replay(split), seg.assign_log(ws.parts[split]), seg.n_segments)
    est = sr.personalised(policies, dict(ws.settings.objective), VERSUS_GLOBAL_AND_CONTROL)
    if ws.settings.guardrails:  # every request with its segment's row, against control
        per_request = np.stack([np.tile(control_weights(ws), (len(sr.segments), 1)),
                                rows[sr.segments]])
        broken = guardrail_breach(ws, split, ws.replay(split).request_terms(per_request))
    else:
        broken = ""
    decision = with_guardrails(guard(est, 0), broken)
    return est, decision, SegmentTable(seg, ws.score_tasks, rows, np.asarray(global_weights),
                                       decision)


def compare_text(est: PersonalisedEstimate, decision: GuardDecision,
                 name: str = "personalised", title: str = "personalised (per segment)"
                 ) -> str:
    """Per metric: ``name`` (the personalised policy), global and control with intervals,
    and the paired lifts."""
    from tuner.cli._format import table

    short = "pers." if name == "personalised" else name
    names = [name, "global", "control"]
    lifts = [f"{short} - global", f"{short} - control", "global - control"]
    rows = []
    for m, metric in enumerate(est.metrics):
        row: list[object] = [metric]
        for p in range(3):
            row.append(f"{est.value[p, m]:.4f} [{est.low[p, m]:.4f}, {est.high[p, m]:.4f}]")
        for q in range(3):
            row.append(f"{est.contrast_value[q, m]:+.4f} [{est.contrast_low[q, m]:+.4f}, "
                       f"{est.contrast_high[q, m]:+.4f}]")
        rows.append(row)
    return (f"{title} vs global vs control on {est.n:,} held-out requests "
            f"(stratified, {100 * est.level:.0f}% delta-method intervals)\n"
            + table(["metric", *names, *lifts], rows) + "\n" + decision.reason)


def compare_dict(est: PersonalisedEstimate, decision: GuardDecision,
                 name: str = "personalised") -> dict[str, Any]:
    """:func:`compare_text` as JSON: per metric each policy's and each lift's value and
    interval (keys ``<name>``, ``global``, ``control``, ``<name>_minus_global``...)."""
    names = (name, "global", "control")
    lifts = (f"{name}_minus_global", f"{name}_minus_control", "global_minus_control")
    return {"n_requests": est.n, "level": est.level, "guard": decision.to_dict(),
            "metrics": {metric: {
                **{n: {"value": float(est.value[p, m]), "low": float(est.low[p, m]),
                       "high": float(est.high[p, m])} for p, n in enumerate(names)},
                **{n: {"value": float(est.contrast_value[q, m]),
                       "low": float(est.contrast_low[q, m]),
                       "high": float(est.contrast_high[q, m])} for q, n in enumerate(lifts)}}
                for m, metric in enumerate(est.metrics)}}


def segment_export(ws: Workspace | StreamedWorkspace, study: optuna.Study,
                   exported: ExportedWeights, url: str, path: Path | None, overwrite: bool,
                   echo: Callable[[str], None]) -> dict[str, Any] | None:
    """The weights file with a segment table (written to ``path``), the global pick
    ``exported`` as its default row; None when the study has no segments."""
    got = personalised_compare(ws, study, np.asarray(exported.weights), url)
    if got is None:
        return None
    est, decision, table_ = got
    echo(compare_text(est, decision))
    data = table_.to_dict(exported)
    if path is not None:
        if path.exists() and not overwrite:
            raise ValueError(f"--out {path} exists; give --force to overwrite it")
        text = json.dumps(data, indent=2)
        atomic_write(path, lambda tmp: Path(tmp).write_text(text + "\n"))
    return data
