"""The weight model's inputs read from a log: its feature matrix and surrogate arrays
(one module, so both the in-memory and the streamed personalise use it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from simulator.estimators import SlateFeedback
from simulator.logs import LoggedTraffic
from simulator.replay import objective_matrix
from tuner.segments._learned import LogArrays
from tuner.segments._segmentation import request_features

__all__ = ["chunk_arrays", "feature_matrix"]


def feature_matrix(traffic: LoggedTraffic, features: Sequence[str]) -> np.ndarray:
    """``[R, F]`` float32 request-level features of a log (the model's input).

    Raises:
        ValueError: an unknown or item-level feature (naming the log's features).
    """
    return request_features(traffic, features, "--features").astype(np.float32)


def chunk_arrays(fb: SlateFeedback, transformed: np.ndarray, traffic: LoggedTraffic,
                 objective: Mapping[str, float], features: Sequence[str]) -> LogArrays:
    """:func:`replay_arrays` from a log's feedback and its fusion-transformed scores."""
    if fb.valid is not None or fb.slot_shown is not None:
        raise ValueError("search personalise trains on logs whose requests all have the same "
                         "candidates and slots; this log is ragged (the replay values it, "
                         "the weight model's surrogate does not yet)")
    if fb.logging_exposure is None:
        raise ValueError("search personalise needs the log's pscore_0..pscore_<K-1> columns "
                         "(every candidate's logging propensity of every slot) for its "
                         "surrogate; this log has only the propensities of its shown rows")
    combine = objective_matrix(fb.tasks, objective)[:, -1]
    return LogArrays(transformed,
                     (fb.rewards @ combine.astype(np.float32)).astype(np.float32),
                     fb.shown.astype(np.float32), fb.logging_exposure, fb.slot_examination,
                     np.asarray(fb.examination, dtype=np.float32),
                     feature_matrix(traffic, features))
