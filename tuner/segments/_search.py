"""Per-segment search: one study per segment beside the global one, in the same database.

Segment ``s`` of study ``name`` is the study ``name/segment-<s>``: an ordinary fusiontune
study (same strategy, space, seed and settings; ``fusiontune:segment_of`` names the parent
and the segment), so Optuna's
dashboard opens it, ``search history`` reads it and the loop resumes it like any other.
Its objective is the segment's own replay (with the guardrails judged on the segment's
requests), so every generation of every segment together is one pass over the log.
The parent study stores the :class:`~tuner.segments.Segmentation` or
:class:`~tuner.segments.Clusters` (``fusiontune:segments``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import optuna

from simulator.replay import Replay
from simulator.streaming import StreamedReplay
from tuner.segments._clusters import AnySegmentation, segmentation_from_dict
from tuner.segments._replay import SegmentedReplay
from tuner.segments._streamed import StreamedSegments
from tuner.study import SearchSpec, create_or_load_study, read_spec, run_rounds
from tuner.study._attrs import _check_same
from tuner.study._history import RoundSummary, replayed_strategy

__all__ = [
    "ATTR_SEGMENTS",
    "ATTR_SEGMENT_OF",
    "refuse_segment_study",
    "run_segmented",
    "segment_picks",
    "segment_study_name",
    "store_segmentation",
    "stored_segmentation",
]

ATTR_SEGMENTS = "fusiontune:segments"
"""User attr of the parent study: the segmentation its segments use (feature and edges,
or k-means features, scaling and centroids)."""
ATTR_SEGMENT_OF = "fusiontune:segment_of"
"""User attr of a segment study: ``{"study": parent, "segment": i}``."""

Objective = Callable[[Replay | StreamedReplay], Callable[[np.ndarray], Any]]
"""Builds a segment's objective (``W [M, S] -> results``) from the segment's replay."""


def segment_study_name(study_name: str, segment: int) -> str:
    """The name of the study that searches segment ``segment`` of ``study_name``."""
    return f"{study_name}/segment-{segment}"


def store_segmentation(study: optuna.Study, segmentation: AnySegmentation) -> None:
    """Store the segmentation in the parent study, or check it is the stored one.

    Raises:
        ValueError: the study already searches other segments.
    """
    given = segmentation.to_dict()
    stored = study.user_attrs.get(ATTR_SEGMENTS)
    if stored is None:
        study.set_user_attr(ATTR_SEGMENTS, given)
    else:
        _check_same(study.study_name, "segments", stored, given)


def stored_segmentation(study: optuna.Study) -> AnySegmentation | None:
    """The segmentation a parent study stored, or None (a global search)."""
    data = study.user_attrs.get(ATTR_SEGMENTS)
    return None if data is None else segmentation_from_dict(data)


def run_segmented(
    storage: str,
    study_name: str,
    search: SearchSpec,
    segmentation: AnySegmentation,
    replay: SegmentedReplay | StreamedSegments,
    objective: Objective,
    until: int,
    progress: bool = False,
    on_round: Callable[[int, RoundSummary], None] | None = None,
) -> list[optuna.Study]:
    """Bring every segment's study to ``until`` complete generations (resuming each).

    Args:
        storage: the database URL (the parent study's).
        study_name: the parent study.
        search: the parent's spec, which each segment study gets too.
        segmentation: the buckets (already merged, see :func:`merge_small`).
        replay: the search split cut by ``segmentation`` (held whole, or streamed).
        objective: builds a segment's objective from its replay.
        until: complete generations each segment study should have.
        progress: a bar per segment.
        on_round: called with ``(segment, summary)`` after each generation.

    Returns:
        The segment studies, in segment order.
    """
    parent = create_or_load_study(storage, study_name, search.space, search.config,
                                  search.seed, search.settings, init_mean=np.asarray(
                                      search.init_mean))
    store_segmentation(parent, segmentation)
    studies = []
    for s in range(segmentation.n_segments):
        rep = replay.segment(s)
        child = create_or_load_study(storage, segment_study_name(study_name, s), search.space,
                                     search.config, search.seed, search.settings,
                                     init_mean=np.asarray(search.init_mean))
        child.set_user_attr(ATTR_SEGMENT_OF, {"study": study_name, "segment": s})

        def hook(summary: RoundSummary, s: int = s) -> None:
            if on_round is not None:
                on_round(s, summary)

        run_rounds(child, search, objective(rep), until=until, progress=progress,
                   on_round=hook)
        studies.append(child)
    return studies


def refuse_segment_study(study: optuna.Study, command: str) -> None:
    """Refuse to run ``command`` on a segment study (its objective is its segment's).

    Raises:
        ValueError: naming the parent study to use instead.
    """
    of = study.user_attrs.get(ATTR_SEGMENT_OF)
    if of is not None:
        raise ValueError(f"study {study.study_name!r} is segment {of['segment']} of study "
                         f"{of['study']!r}; use 'fusiontune search {command} --study "
                         f"{of['study']}' (it runs and judges every segment)")


def segment_picks(storage: str, study_name: str, n_segments: int) -> np.ndarray:
    """``[K, S]`` each segment study's pick (its strategy's, e.g. CEM's mean) as weights.

    Raises:
        ValueError: a segment study is missing or has no complete generation.
    """
    rows = []
    for s in range(n_segments):
        child = create_or_load_study(storage, segment_study_name(study_name, s), create=False)
        spec = read_spec(child)
        strategy, done = replayed_strategy(child, spec)
        if done == 0:
            raise ValueError(f"segment study {child.study_name!r} has no complete round yet")
        rows.append(spec.space.matrix_to_weights(strategy.pick()[None])[0])
    return np.stack(rows)
