"""Per-segment search on a streamed log (a folder of Parquet files, or ``--stream``).

A segment's replay is the streamed replay of the search split that keeps, of each chunk,
the requests of that segment (:class:`InSegment`, read from the chunk's feature column),
so no pass holds more than a chunk and a segment study's trials equal those of the same
study on the log held whole (tested), as the global streamed search's do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from simulator.logs import LoggedTraffic
from simulator.streaming import StreamedReplay
from tuner.evaluation.streamed import StreamedWorkspace
from tuner.segments._clusters import AnySegmentation
from tuner.segments._segmentation import request_features

__all__ = ["InSegment", "StreamedSegments", "split_features"]


@dataclass(frozen=True)
class InSegment:
    """``traffic -> [c]`` mask of the requests in one segment (a chunk reader's ``keep``)."""

    segmentation: AnySegmentation
    segment: int

    def __call__(self, traffic: LoggedTraffic) -> np.ndarray:
        return self.segmentation.assign_log(traffic) == self.segment


def split_features(ws: StreamedWorkspace, part: str, features: Sequence[str]) -> np.ndarray:
    """``[R, F]`` request-level features of every request of a split (one pass).

    Raises:
        ValueError: an unknown, item-level or non-finite feature (see
            :func:`~tuner.segments.request_features`).
    """
    got = [request_features(c.traffic, features)
           for c in ws.chunks(part).split_chunks(features=True)]
    return np.concatenate(got) if got else np.zeros((0, len(features)))


class StreamedSegments:
    """One split of a streamed log cut by a segmentation: what
    :class:`~tuner.segments.SegmentedReplay` is for a log held whole.

    Args:
        ws: the streamed workspace.
        part: the split (e.g. ``"search"``).
        segmentation: the buckets.
    """

    def __init__(self, ws: StreamedWorkspace, part: str, segmentation: AnySegmentation
                 ) -> None:
        self.ws, self.part, self.segmentation = ws, part, segmentation
        self.n_segments = segmentation.n_segments

    def segment(self, s: int) -> StreamedReplay:
        """The streamed replay of segment ``s``'s requests."""
        if not 0 <= s < self.n_segments:
            raise ValueError(f"segment must be in 0..{self.n_segments - 1}, got {s}")
        return self.ws.replay(self.part, keep=InSegment(self.segmentation, s))

    def expected_events(self, weights: np.ndarray, objective: Mapping[str, float],
                        sizes: np.ndarray) -> np.ndarray:
        """``[K]`` expected objective events behind each segment's estimate of ``weights``
        ``[S]`` (one pass a non-empty segment; ``sizes [K]`` its requests, 0: no pass)."""
        out = np.zeros(self.n_segments)
        for s in range(self.n_segments):
            if sizes[s]:
                events = self.segment(s).evaluate(np.atleast_2d(weights), objective).events
                out[s] = np.nan if events is None else events[0, -1]
        return out
