"""Personalised fusion weights: one weight vector per segment of requests.

A :class:`Segmentation` buckets a request-level log feature, :class:`Clusters` are k-means
clusters of several; :class:`SegmentedReplay`
values per-segment populations and personalised policies on a split; :func:`run_segmented`
searches each segment in its own study; :func:`guard` exports personalisation only when
its paired held-out lift over the global pick is significant; :class:`SegmentTable` is
the export a server reads without Python. :func:`personalise` trains a learned weight model
``w(x)`` (:class:`LearnedWeights`) from the global pick and stores it in ``<study>/learned``.
"""

from __future__ import annotations

from tuner.segments._clusters import KMEANS, AnySegmentation, Clusters
from tuner.segments._export import (
    CLUSTERS_SCHEMA_VERSION,
    SEGMENTS_SCHEMA_VERSION,
    GuardDecision,
    SegmentTable,
    guard,
    with_guardrails,
)
from tuner.segments._learned import LearnedWeights, WeightModelConfig, train_weight_model
from tuner.segments._personalise import (
    LearnedEvaluation,
    evaluate_learned,
    learned_study_name,
    personalise,
    stored_learned,
)
from tuner.segments._replay import (
    PersonalisedEstimate,
    SegmentedReplay,
    per_request_estimate,
    sub_replay,
)
from tuner.segments._search import (
    ATTR_SEGMENT_OF,
    ATTR_SEGMENTS,
    refuse_segment_study,
    run_segmented,
    segment_picks,
    segment_study_name,
    store_segmentation,
    stored_segmentation,
)
from tuner.segments._segmentation import (
    FEATURE_PREFIX,
    QUANTILES,
    Segmentation,
    merge_small,
    request_feature,
    request_features,
)

__all__ = [
    "ATTR_SEGMENTS",
    "ATTR_SEGMENT_OF",
    "CLUSTERS_SCHEMA_VERSION",
    "FEATURE_PREFIX",
    "KMEANS",
    "QUANTILES",
    "AnySegmentation",
    "Clusters",
    "SEGMENTS_SCHEMA_VERSION",
    "GuardDecision",
    "LearnedEvaluation",
    "LearnedWeights",
    "PersonalisedEstimate",
    "SegmentTable",
    "SegmentedReplay",
    "Segmentation",
    "WeightModelConfig",
    "evaluate_learned",
    "guard",
    "learned_study_name",
    "merge_small",
    "per_request_estimate",
    "personalise",
    "refuse_segment_study",
    "request_feature",
    "request_features",
    "run_segmented",
    "segment_picks",
    "segment_study_name",
    "store_segmentation",
    "stored_learned",
    "stored_segmentation",
    "sub_replay",
    "train_weight_model",
    "with_guardrails",
]
