from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from ranker import auc
from ranker.metrics import task_metrics


@pytest.mark.parametrize("seed", range(5))
def test_auc_matches_mann_whitney_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 300
    labels = (rng.random(n) < 0.3).astype(np.float64)
    scores = rng.integers(0, 8, n) + labels * rng.integers(0, 3, n)  # many ties
    pos, neg = scores[labels == 1], scores[labels == 0]
    u = mannwhitneyu(pos, neg, alternative="two-sided").statistic
    assert math.isclose(auc(labels, scores), u / (len(pos) * len(neg)), rel_tol=1e-12)


def test_auc_known_values() -> None:
    assert auc(np.array([0, 1]), np.array([0.1, 0.9])) == 1.0
    assert auc(np.array([0, 1]), np.array([0.9, 0.1])) == 0.0
    assert auc(np.array([0, 1, 0, 1]), np.ones(4)) == 0.5


def test_auc_is_nan_with_one_class() -> None:
    assert math.isnan(auc(np.zeros(5), np.arange(5)))
    assert math.isnan(auc(np.ones(5), np.arange(5)))


def test_task_metrics_logloss_and_calibration() -> None:
    y = np.array([0.0, 1.0, 1.0, 0.0])
    p = np.array([0.25, 0.75, 0.5, 0.5])
    m = task_metrics(y, p)
    expected = -np.mean(np.log([0.75, 0.75, 0.5, 0.5]))
    assert math.isclose(m.logloss, expected)
    assert math.isclose(m.calibration, 0.5 / 0.5)
    assert m.n == 4
    assert math.isnan(task_metrics(np.zeros(3), np.full(3, 0.1)).calibration)
