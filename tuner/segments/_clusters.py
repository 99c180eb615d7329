"""Segments of requests by k-means clusters of several request-level log features.

:class:`Clusters` is the other serving contract of personalised weights (beside the
one-feature buckets of :class:`~tuner.segments.Segmentation`): a request's features
``x [F]`` are standardized, ``z = (x - center) / scale``, and the request belongs to the
nearest centroid, ``argmin_i sum((z - centroids[i]) ** 2)`` (the lowest ``i`` on a tie).
Center, scale and centroids are fitted on the search split and stored in the study, so the
same requests fall in the same segment at search, at export and in a server, which needs
a few multiply-adds and no Python for it.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.logs import LoggedTraffic
from tuner.segments._segmentation import FEATURE_PREFIX, Segmentation, request_features

__all__ = ["KMEANS", "AnySegmentation", "Clusters", "segmentation_from_dict"]

KMEANS = "kmeans"
"""The ``kind`` a stored or exported k-means segmentation carries."""

RULE = "z = (x - center) / scale; segment = argmin_i sum((z - centroids[i])^2), lowest i on a tie"


@dataclass(frozen=True)
class Clusters:
    """K-means clusters of standardized request-level features.

    Args:
        features: the log features (without the ``feature_`` prefix), at least one.
        center: ``[F]`` what is subtracted from each feature (its search-split mean).
        scale: ``[F]`` positive divisors (its search-split standard deviation).
        centroids: ``[K, F]`` the cluster centres in standardized units.

    Example:
        >>> c = Clusters(("a", "b"), (0.0, 0.0), (1.0, 2.0), ((0.0, 0.0), (1.0, 1.0)))
        >>> c.assign(np.array([[0.1, 0.2], [0.9, 2.5]])).tolist()
        [0, 1]
    """

    features: tuple[str, ...]
    center: tuple[float, ...]
    scale: tuple[float, ...]
    centroids: tuple[tuple[float, ...], ...]

    def __post_init__(self) -> None:
        f = len(self.features)
        if f == 0 or any(not name for name in self.features):
            raise ValueError("k-means segments need at least one named feature")
        if len(set(self.features)) != f:
            raise ValueError(f"k-means segment features repeat: {list(self.features)}")
        c = np.asarray(self.centroids, dtype=np.float64)
        if c.ndim != 2 or c.shape[1] != f or c.shape[0] < 1 or \
                len(self.center) != f or len(self.scale) != f:
            raise ValueError(f"k-means segments of {f} features need center [{f}], scale "
                             f"[{f}] and centroids [K, {f}] with K >= 1; got "
                             f"{len(self.center)}, {len(self.scale)} and {list(c.shape)}")
        s = np.asarray(self.scale, dtype=np.float64)
        if not (np.isfinite(c).all() and np.isfinite(self.center).all()
                and np.isfinite(s).all() and (s > 0).all()):
            raise ValueError("k-means segments need finite centers and centroids and "
                             f"positive finite scales; got scale {list(self.scale)}")

    @property
    def n_segments(self) -> int:
        return len(self.centroids)

    @property
    def kind(self) -> str:
        return KMEANS

    @classmethod
    def from_kmeans(cls, features: Sequence[str], values: np.ndarray, k: int, seed: int
                    ) -> tuple[Clusters, list[str]]:
        """``k`` k-means clusters (k-means++ start, Lloyd's iterations, ``seed``) of the rows
        ``values [R, F]``, each feature standardized by its mean and standard deviation.
        The same rows in any order give the same clusters.

        Returns:
            The clusters, numbered by their centres in lexicographic order, and one line
            per thing people should know (a constant feature, clusters left empty and
            dropped).

        Raises:
            ValueError: ``k < 1``, a shape that does not match ``features``, non-finite
                values, or fewer rows than ``k``.
        """
        from scipy.cluster.vq import kmeans2

        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"--segments is {k!r}; need an integer >= 1")
        names = tuple(f.removeprefix(FEATURE_PREFIX) for f in features)
        x = np.asarray(values, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(names):
            raise ValueError(f"k-means segments of {len(names)} features need values "
                             f"[R, {len(names)}], got {list(x.shape)}")
        if not np.isfinite(x).all():
            bad = names[int(np.flatnonzero(~np.isfinite(x).all(axis=0))[0])]
            raise ValueError(f"feature {bad!r} has non-finite values; segments need numbers")
        if len(x) < k:
            raise ValueError(f"{len(x)} requests cannot make {k} k-means segments")
        notes = []
        # rows in a canonical order: the fit depends on the rows, not on the order a log
        # held whole or read chunk by chunk gives them (k-means++ draws row indices, and
        # the sums of the mean and sd are taken in that order too)
        x = x[np.lexsort(x.T[::-1])]
        center, sd = x.mean(axis=0), x.std(axis=0)
        for name in (n for n, v in zip(names, sd, strict=True) if not v > 0):
            notes.append(f"feature {name!r} is constant on the search split: it cannot "
                         "separate segments")
        scale = np.where(sd > 0, sd, 1.0)
        z = (x - center) / scale
        first = np.r_[True, (np.diff(x, axis=0) != 0).any(axis=1)]  # of equal sorted rows
        distinct = int(first.sum())
        if distinct < k:
            notes.append(f"the search split has {distinct} distinct feature rows: "
                         f"{distinct} k-means segments, not {k}")
            cents = z[first]
        elif k == 1:
            cents = np.zeros((1, len(names)))
        else:
            with warnings.catch_warnings():  # empty clusters are dropped and reported below
                warnings.filterwarnings("ignore", message="One of the clusters is empty")
                cents, _ = kmeans2(z, k, seed=seed, minit="++")
        got = cls(names, tuple(map(float, center)), tuple(map(float, scale)),
                  tuple(tuple(map(float, c)) for c in cents))
        labels = got.assign(x)
        kept = np.unique(labels)
        if kept.size < min(k, distinct):
            notes.append(f"{k - kept.size} of {k} k-means clusters were left empty: "
                         f"{kept.size} segments")
        order = sorted(kept.tolist(), key=lambda i: tuple(cents[i]))
        return cls(names, got.center, got.scale,
                   tuple(tuple(map(float, cents[i])) for i in order)), notes

    def assign(self, values: np.ndarray) -> np.ndarray:
        """``[R]`` int64 segment of each row of features ``values [R, F]``."""
        z = (np.asarray(values, dtype=np.float64) - np.asarray(self.center)) / \
            np.asarray(self.scale)
        c = np.asarray(self.centroids)
        # |z - c|^2 = |z|^2 - 2 z.c + |c|^2; |z|^2 is the same for every centroid
        d = (c * c).sum(axis=1)[None, :] - 2.0 * (z @ c.T)
        return np.argmin(d, axis=1).astype(np.int64)

    def values(self, traffic: LoggedTraffic) -> np.ndarray:
        """``[R, F]`` this segmentation's features of each request of a log."""
        return request_features(traffic, self.features)

    def assign_log(self, traffic: LoggedTraffic) -> np.ndarray:
        """``[R]`` segment of each request of a log (reads its features)."""
        return self.assign(self.values(traffic))

    def raw_centroid(self, segment: int) -> dict[str, float]:
        """A segment's centre in the features' own units."""
        scale = np.asarray(self.scale)
        c = np.asarray(self.centroids[segment]) * scale + np.asarray(self.center)
        c = np.where(np.abs(c) < 1e-9 * scale, 0.0, c)  # a rounding error of a 0, not 6e-15
        return dict(zip(self.features, map(float, c), strict=True))

    def describe(self, segment: int) -> str:
        """A segment for people: its centre in the features' units."""
        return "centre " + ", ".join(f"{f}={v:.4g}"
                                     for f, v in self.raw_centroid(segment).items())

    def merged(self, segment: int, counts: np.ndarray) -> Clusters:
        """``segment``'s centroid dropped: its requests go to their nearest other centroid
        (``counts``, each segment's events, is not needed: a cluster's neighbours are
        whichever centroids its requests are nearest to)."""
        del counts
        if self.n_segments == 1:
            raise ValueError("one segment cannot be merged")
        return Clusters(self.features, self.center, self.scale,
                        self.centroids[:segment] + self.centroids[segment + 1:])

    def to_dict(self) -> dict[str, Any]:
        return {"kind": KMEANS, "features": list(self.features), "center": list(self.center),
                "scale": list(self.scale), "centroids": [list(c) for c in self.centroids],
                "rule": RULE}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Clusters:
        return cls(tuple(str(f) for f in data["features"]),
                   tuple(float(v) for v in data["center"]),
                   tuple(float(v) for v in data["scale"]),
                   tuple(tuple(float(v) for v in c) for c in data["centroids"]))


AnySegmentation = Segmentation | Clusters
"""Either kind of segments: buckets of one feature, or k-means clusters of several."""


def segmentation_from_dict(data: Mapping[str, Any]) -> AnySegmentation:
    """The segmentation a study stored (``to_dict`` of either kind)."""
    if data.get("kind") == KMEANS:
        return Clusters.from_dict(data)
    return Segmentation.from_dict(data)
