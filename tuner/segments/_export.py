"""The guard that decides whether personalisation is exported, and the segment table.

The table extends the weights file (``tuner/picks/weights.schema.json``, schema 1.1): its
``weights`` are the *default row*, the global pick every reader of schema 1.0 already
serves; ``segments`` adds the feature, the bucket edges and one weight row per segment.
A server reads the request's feature ``x``, takes the row ``i`` with
``edges[i - 1] <= x < edges[i]`` (no Python needed) and falls back to ``weights`` when the
feature is missing or ``segments.personalised`` is false.

Schema 1.2 adds k-means segments (``segments.kind == "kmeans"``): the table holds the
features, their ``center`` and ``scale`` and the ``centroids``; a server standardizes the
request's features, ``z = (x - center) / scale``, and serves the row of the nearest
centroid. Files of one-feature buckets stay 1.1.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.replay import OBJECTIVE
from tuner.picks.export import ExportedWeights
from tuner.segments._clusters import KMEANS, AnySegmentation, Clusters
from tuner.segments._replay import PersonalisedEstimate
from tuner.segments._segmentation import Segmentation

__all__ = ["CLUSTERS_SCHEMA_VERSION", "SEGMENTS_SCHEMA_VERSION", "GuardDecision",
           "SegmentTable", "guard", "with_guardrails"]

SEGMENTS_SCHEMA_VERSION = "1.1"
"""The weights-file version that added ``segments`` (a minor: 1.0 readers ignore it)."""
CLUSTERS_SCHEMA_VERSION = "1.2"
"""The weights-file version that added k-means ``segments`` (a 1.1 reader would look for
``edges``; a 1.0 reader still serves the default row)."""


@dataclass(frozen=True)
class GuardDecision:
    """Whether the personalised policy beat the global pick on held-out requests.

    Args:
        personalised: True when the paired lift's interval lies above 0.
        lift: ``{"value", "low", "high"}`` of personalised minus global (objective).
        level: the interval's confidence level.
        reason: one line for people.
    """

    personalised: bool
    lift: dict[str, float]
    level: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"personalised": self.personalised, "lift_over_global": self.lift,
                "level": self.level, "reason": self.reason}


def guard(estimate: PersonalisedEstimate, contrast: int = 0) -> GuardDecision:
    """Export personalisation only when its paired held-out lift over global is significant.

    Args:
        estimate: held-out estimates whose contrast row ``contrast`` is personalised
            minus global on the same requests.
        contrast: that row.
    """
    m = estimate.metric(OBJECTIVE)
    lift = {"value": float(estimate.contrast_value[contrast, m]),
            "low": float(estimate.contrast_low[contrast, m]),
            "high": float(estimate.contrast_high[contrast, m])}
    pct = f"{100 * estimate.level:.0f}%"
    ok = bool(math.isfinite(lift["low"]) and lift["low"] > 0)
    span = f"{lift['value']:+.4g} [{lift['low']:+.4g}, {lift['high']:+.4g}]"
    reason = (f"personalised beats global on held-out requests: lift {span} ({pct})" if ok
              else f"personalised lift over global {span} ({pct}) is not significant: "
                   "exporting the global pick")
    return GuardDecision(ok, lift, estimate.level, reason)


def with_guardrails(decision: GuardDecision, broken: str) -> GuardDecision:
    """``decision``, refused when the personalised policy breaks a guardrail on held-out
    requests (``broken``: why, from :func:`tuner.evaluation.guardrails.guardrail_reasons`;
    ``""``: none broken)."""
    if not broken or not decision.personalised:
        return decision
    return dataclasses.replace(decision, personalised=False, reason=(
        f"personalised policy breaks a guardrail on held-out requests ({broken}): "
        "exporting the global pick"))


@dataclass(frozen=True)
class SegmentTable:
    """Segment -> weights, with the default row and the bucket edges.

    Args:
        segmentation: feature and edges, or k-means clusters.
        tasks: the weight order.
        rows: ``[K, S]`` weights of each segment.
        default: ``[S]`` the global pick, served when not personalised.
        decision: the guard's decision (None: not judged).

    Example:
        >>> t = SegmentTable(Segmentation("a", (1.0,)), ("click", "like"),
        ...                  np.array([[1.0, 0.5], [1.0, 2.0]]), np.array([1.0, 1.0]))
        >>> t.weights_for(np.array([0.0, 3.0])).tolist()
        [[1.0, 0.5], [1.0, 2.0]]
    """

    segmentation: AnySegmentation
    tasks: tuple[str, ...]
    rows: np.ndarray
    default: np.ndarray
    decision: GuardDecision | None = None

    def __post_init__(self) -> None:
        rows = np.asarray(self.rows, dtype=np.float64)
        k, s = self.segmentation.n_segments, len(self.tasks)
        if rows.shape != (k, s) or np.asarray(self.default).shape != (s,):
            raise ValueError(f"segment rows must be [K, S] = [{k}, {s}] and the default [S]; "
                             f"got {rows.shape} and {np.asarray(self.default).shape}")
        if not (np.isfinite(rows).all() and np.isfinite(self.default).all()):
            raise ValueError("segment weights must be finite")

    @property
    def personalised(self) -> bool:
        return self.decision is None or self.decision.personalised

    def weights_for(self, values: np.ndarray) -> np.ndarray:
        """``[R, S]`` the weights a server uses for requests with feature ``values`` (``[R]``
        for one-feature buckets, ``[R, F]`` for k-means clusters)."""
        if not self.personalised:
            return np.broadcast_to(np.asarray(self.default), (len(values), len(self.tasks)))
        return np.asarray(self.rows)[self.segmentation.assign(values)]

    def segments_block(self) -> dict[str, Any]:
        """The ``segments`` object of the weights file."""
        guard_ = None if self.decision is None else self.decision.to_dict()
        seg = self.segmentation
        if isinstance(seg, Clusters):
            rows = [{"segment": i, "centroid": seg.raw_centroid(i),
                     "weights": dict(zip(self.tasks, map(float, w), strict=True))}
                    for i, w in enumerate(np.asarray(self.rows))] if self.personalised else []
            return {**seg.to_dict(), "personalised": self.personalised, "rows": rows,
                    "guard": guard_}
        rows = []
        if self.personalised:
            for i, w in enumerate(np.asarray(self.rows)):
                low, high = seg.bounds(i)
                rows.append({"segment": i, "low": low, "high": high,
                             "weights": dict(zip(self.tasks, map(float, w), strict=True))})
        return {"feature": seg.feature, "edges": list(seg.edges),
                "rule": "segment i holds requests with edges[i-1] <= feature < edges[i]",
                "personalised": self.personalised, "rows": rows, "guard": guard_}

    def to_dict(self, base: ExportedWeights) -> dict[str, Any]:
        """The weights file: ``base`` (whose weights must be the default row) + segments."""
        if not np.allclose(base.weights, self.default):
            raise ValueError("the file's weights must be the default (global) row")
        version = (CLUSTERS_SCHEMA_VERSION if isinstance(self.segmentation, Clusters)
                   else SEGMENTS_SCHEMA_VERSION)
        return {**base.to_dict(), "schema_version": version,
                "segments": self.segments_block()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SegmentTable:
        """Read a weights file's ``segments`` back (the default row is ``weights``).

        Raises:
            ValueError: the file has no ``segments`` or a row lacks a task.
        """
        block = data.get("segments")
        if not isinstance(block, Mapping):
            raise ValueError("the weights file has no 'segments' table")
        tasks = tuple(data["tasks"])
        seg: AnySegmentation = (
            Clusters.from_dict(block) if block.get("kind") == KMEANS else
            Segmentation(str(block["feature"]), tuple(float(e) for e in block["edges"])))
        default = np.array([float(data["weights"][t]) for t in tasks])
        rows_in: Sequence[Mapping[str, Any]] = block["rows"]
        if block["personalised"]:
            rows = np.array([[float(r["weights"][t]) for t in tasks] for r in rows_in])
        else:
            rows = np.tile(default, (seg.n_segments, 1))
        guard_in = block.get("guard")
        decision = None if guard_in is None else GuardDecision(
            bool(guard_in["personalised"]), dict(guard_in["lift_over_global"]),
            float(guard_in["level"]), str(guard_in["reason"]))
        if decision is None and not block["personalised"]:
            decision = GuardDecision(False, {}, math.nan, "not personalised")
        return cls(seg, tasks, rows, default, decision)
