"""Cheap deterministic, row-wise objectives that worker subprocesses import by name
(``--evaluate tests.tuner.toy_objective:evaluate``)."""

from __future__ import annotations

import os
import time

import numpy as np

from tuner.space import FusionSpace
from tuner.strategies import CEMConfig
from tuner.study import SearchSpec, TrialResult

SPACE = FusionSpace(("click", "like", "follow"), pinned="click")
CONFIG = CEMConfig(population=16)
SEED = 5
TARGET = np.array([1.0, 2.5, 0.7])
SEARCH = SearchSpec.new(SPACE, CONFIG, SEED)
"""The search the toy studies run (CEM, box-centre start)."""
SLEEP_ENV = "FUSIONTUNE_TOY_SLEEP"


def evaluate(W: np.ndarray) -> list[TrialResult]:
    """``-|w - target|^2`` per row of ``W [M, 3]``, with per-task metrics."""
    v = -((W - TARGET) ** 2).sum(axis=1)
    return [
        TrialResult(x, x - 0.1, x + 0.1, 50.0, dict(zip(SPACE.tasks, w, strict=True)))
        for x, w in zip(v.tolist(), W.tolist(), strict=True)
    ]


def slow_evaluate(W: np.ndarray) -> list[TrialResult]:
    """:func:`evaluate` after sleeping ``$FUSIONTUNE_TOY_SLEEP`` seconds (default 0.3) per
    call, so a test can kill a worker in the middle of its chunk."""
    time.sleep(float(os.environ.get(SLEEP_ENV, "0.3")))
    return evaluate(W)
