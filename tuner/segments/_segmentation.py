"""Segments of requests by one request-level log feature, and the rule that merges small ones.

A :class:`Segmentation` is the serving contract of personalised weights: a request whose
feature value is ``x`` belongs to segment ``searchsorted(edges, x, side="right")``, i.e.
segment ``i`` holds ``edges[i - 1] <= x < edges[i]`` (the first and last are open-ended).
Edges are quantiles of the search split, stored in the study, so the same requests fall in
the same segment at search, at export and in a server (which needs no Python for it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np

from simulator.logs import LoggedTraffic

__all__ = ["FEATURE_PREFIX", "QUANTILES", "Segmentation", "merge_small", "request_feature",
           "request_features"]

FEATURE_PREFIX = "feature_"
"""Log columns of features carry this prefix; ``--segment-by`` takes either spelling."""
QUANTILES = "quantiles"
"""The ``kind`` of a one-feature bucket segmentation."""


class _Mergeable(Protocol):
    @property
    def n_segments(self) -> int: ...

    def describe(self, segment: int) -> str: ...

    def merged(self, segment: int, counts: np.ndarray) -> Any: ...


S = TypeVar("S", bound=_Mergeable)


@dataclass(frozen=True)
class Segmentation:
    """Buckets of a numeric request-level feature.

    Args:
        feature: the log feature (without the ``feature_`` column prefix).
        edges: ``K - 1`` strictly increasing finite inner edges of ``K`` segments.

    Example:
        >>> seg = Segmentation.from_quantiles("user_activity", np.arange(101.0), 4)
        >>> seg.edges, seg.n_segments
        ((25.0, 50.0, 75.0), 4)
        >>> seg.assign(np.array([0.0, 25.0, 99.0])).tolist()
        [0, 1, 3]
    """

    feature: str
    edges: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not self.feature:
            raise ValueError("Segmentation.feature is empty; name a log feature")
        e = np.asarray(self.edges, dtype=np.float64)
        if not np.isfinite(e).all() or (np.diff(e) <= 0).any():
            raise ValueError(f"segment edges must be finite and strictly increasing, "
                             f"got {list(self.edges)}")

    @property
    def n_segments(self) -> int:
        return len(self.edges) + 1

    @property
    def features(self) -> tuple[str, ...]:
        return (self.feature,)

    @property
    def kind(self) -> str:
        return QUANTILES

    @classmethod
    def from_quantiles(cls, feature: str, values: np.ndarray, k: int) -> Segmentation:
        """``k`` buckets at the quantiles ``i / k`` of ``values`` ``[R]``; fewer when the
        feature has fewer distinct values (repeated quantiles are one edge).

        Raises:
            ValueError: ``k < 1``, or non-finite values.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"--segments is {k!r}; need an integer >= 1")
        x = np.asarray(values, dtype=np.float64)
        if not np.isfinite(x).all():
            raise ValueError(f"feature {feature!r} has non-finite values; segments need "
                             "numbers")
        qs = np.quantile(x, np.arange(1, k) / k) if k > 1 else np.array([])
        # an edge at the minimum would leave the first segment empty
        edges = [float(q) for q in np.unique(qs) if q > x.min()]
        return cls(feature, tuple(edges))

    def assign(self, values: np.ndarray) -> np.ndarray:
        """``[R]`` int64 segment of each value ``[R]``."""
        x = np.asarray(values, dtype=np.float64)
        return np.searchsorted(np.asarray(self.edges), x, side="right").astype(np.int64)

    def values(self, traffic: LoggedTraffic) -> np.ndarray:
        """``[R]`` this segmentation's feature of each request of a log."""
        return request_feature(traffic, self.feature)

    def assign_log(self, traffic: LoggedTraffic) -> np.ndarray:
        """``[R]`` segment of each request of a log (reads its feature)."""
        return self.assign(self.values(traffic))

    def bounds(self, segment: int) -> tuple[float | None, float | None]:
        """``(low, high)`` of a segment: ``low <= x < high``; None where open-ended."""
        low = None if segment == 0 else self.edges[segment - 1]
        high = None if segment == len(self.edges) else self.edges[segment]
        return low, high

    def without_edge(self, i: int) -> Segmentation:
        """Segments ``i`` and ``i + 1`` merged."""
        return Segmentation(self.feature, self.edges[:i] + self.edges[i + 1:])

    def describe(self, segment: int) -> str:
        """A segment for people: its bucket."""
        return _span(*self.bounds(segment))

    def merged(self, segment: int, counts: np.ndarray) -> Segmentation:
        """``segment`` merged with the neighbour with fewer events ``counts [K]``."""
        if self.n_segments == 1:
            raise ValueError("one segment cannot be merged")
        if segment == 0:
            return self.without_edge(0)
        if segment == self.n_segments - 1:
            return self.without_edge(segment - 1)
        lower = counts[segment - 1] <= counts[segment + 1]
        return self.without_edge(segment - 1 if lower else segment)

    def to_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "edges": list(self.edges),
                "rule": "segment i holds edges[i-1] <= x < edges[i]"}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Segmentation:
        return cls(str(data["feature"]), tuple(float(e) for e in data["edges"]))


def request_feature(traffic: LoggedTraffic, feature: str, what: str = "--segment-by"
                    ) -> np.ndarray:
    """``[R]`` float64 value of a request-level feature (one value per request).

    ``what`` names the option or setting in messages.

    Raises:
        ValueError: an unknown feature (naming the log's), or one that varies across the
            candidates of a request (an item feature cannot choose a request's weights).
    """
    name = feature.removeprefix(FEATURE_PREFIX)
    if name not in traffic.features:
        raise ValueError(f"{what} {feature!r}: the log has no such feature; its "
                         f"features: {sorted(traffic.features)}")
    col = np.asarray(traffic.features[name])
    if col.ndim == 2:
        first = col[:, :1]
        if not (col == first).all():
            bad = int(np.flatnonzero((col != first).any(axis=1))[0])
            raise ValueError(f"{what} {feature!r}: the feature differs between the "
                             f"candidates of request row {bad}; weights chosen per request "
                             "need a request-level (user or context) feature")
        col = col[:, 0]
    try:
        return col.astype(np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what} {feature!r}: the feature is not numeric") from None


def request_features(traffic: LoggedTraffic, features: Sequence[str],
                     what: str = "--segment-by") -> np.ndarray:
    """``[R, F]`` float64 request-level features of a log, in the order given.

    Raises:
        ValueError: an unknown, item-level, non-numeric or non-finite feature (see
            :func:`request_feature`).
    """
    cols = [request_feature(traffic, f, what) for f in features]
    x = np.stack(cols, axis=1) if cols else np.zeros((traffic.n_requests, 0))
    if not np.isfinite(x).all():
        bad = features[int(np.flatnonzero(~np.isfinite(x).all(axis=0))[0])]
        raise ValueError(f"{what} {bad!r} has non-finite values; it needs numbers")
    return x


def merge_small(segmentation: S,
                events: Callable[[S], Sequence[float] | np.ndarray],
                min_events: float) -> tuple[S, list[str]]:
    """Merge segments with too few expected events into a neighbour until none is left.

    The segment with the fewest events is merged into its neighbours (a bucket with the
    smaller of the two next to it, a k-means cluster into the nearest other centroids of
    its requests), the events recounted, and so on: a segment's estimate never rests on
    fewer than ``min_events`` (see :data:`simulator.replay.MIN_EVENTS`).

    Args:
        segmentation: the buckets to check.
        events: the expected events ``[K]`` of each segment of a segmentation.
        min_events: the fewest a segment may have.

    Returns:
        The merged segmentation and one line per merge, for people. An estimator
        without importance weights (all events NaN) leaves the segments as they are, and
        says so.

    Raises:
        ValueError: even one segment (the whole split) has too few events.
    """
    notes: list[str] = []
    seg = segmentation
    while True:
        counts = np.asarray(events(seg), dtype=np.float64)
        if np.isnan(counts).all():  # e.g. the direct method: no importance weights to count
            notes.append("the estimator reports no expected events: segment sizes unchecked")
            return seg, notes
        small = np.flatnonzero(~(counts >= min_events))
        if small.size == 0:
            return seg, notes
        if seg.n_segments == 1:
            raise ValueError(f"the search split has only {counts[0]:.0f} expected events "
                             f"(need {min_events:g}): too little traffic to personalise")
        i = int(small[np.argmin(counts[small])])
        notes.append(f"segment {i} ({seg.describe(i)}) has {counts[i]:.0f} expected events "
                     f"(< {min_events:g}): merged into its neighbours")
        seg = seg.merged(i, counts)


def _span(low: float | None, high: float | None) -> str:
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    return f"[{lo}, {hi})"
