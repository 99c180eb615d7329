"""Offline metrics per task over its sample space: AUC, logloss, calibration."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import rankdata

from ranker.data import RankerData, encode_features, encode_labels
from ranker.model import MultiTaskModel
from ranker.score import PROB_CLIP, predict_logits

__all__ = ["TaskMetrics", "auc", "evaluate", "task_metrics"]


@dataclass(frozen=True)
class TaskMetrics:
    """Metrics of one task over its sample space.

    Args:
        auc: ROC AUC (nan if the space holds one class only).
        logloss: Mean binary cross-entropy of the clipped probabilities.
        calibration: Mean predicted probability / observed positive rate (1 is
            calibrated; nan when no positives).
        n: Rows in the task's sample space.
    """

    auc: float
    logloss: float
    calibration: float
    n: int


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by ranks, ties counted as one half (the Mann-Whitney U statistic / n+ n-).

    Args:
        labels: ``[n]`` binary labels (positive: > 0.5).
        scores: ``[n]`` scores, higher meaning more likely positive.

    Returns:
        AUC in ``[0, 1]``, or nan when only one class is present.

    Example:
        >>> auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.5, 0.5, 0.9]))
        0.875
    """
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.shape != scores.shape or labels.ndim != 1:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} must be one 1-D shape")
    pos = labels > 0.5
    n_pos = int(pos.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)  # average ranks for ties, 1-based
    u = float(ranks[pos].sum()) - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)


def task_metrics(labels: np.ndarray, probs: np.ndarray) -> TaskMetrics:
    """Metrics of one task given the rows of its sample space.

    Args:
        labels: ``[n]`` labels in ``[0, 1]``.
        probs: ``[n]`` predicted probabilities.

    Example:
        >>> task_metrics(np.array([0.0, 1.0]), np.array([0.2, 0.8])).auc
        1.0
    """
    n = len(labels)
    if n == 0:
        nan = float("nan")
        return TaskMetrics(auc=nan, logloss=nan, calibration=nan, n=0)
    y = np.asarray(labels, dtype=np.float64)
    p = np.clip(np.asarray(probs, dtype=np.float64), PROB_CLIP, 1 - PROB_CLIP)
    logloss = float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))
    rate = float(y.mean())
    calibration = float(p.mean() / rate) if rate > 0 else float("nan")
    return TaskMetrics(auc=auc(y, p), logloss=logloss, calibration=calibration, n=n)


def evaluate(
    model: MultiTaskModel, data: RankerData, batch_size: int = 8192
) -> dict[str, TaskMetrics]:
    """Metrics of every task over its sample space (``"after:x"``: rows with x = 1).

    Args:
        model: The ranker.
        data: Rows with features and a label for every task.
        batch_size: Rows per forward pass.

    Returns:
        Task -> :class:`TaskMetrics`.

    Example:
        >>> import numpy as np
        >>> from ranker import CategoricalFeature, TaskSpec, build_mmoe
        >>> model = build_mmoe([CategoricalFeature("item", 10)], [TaskSpec("click")])
        >>> rows = RankerData({"item": np.arange(10)}, {"click": np.arange(10) % 2})
        >>> metrics = evaluate(model, rows)  # an untrained model: auc near 0.5
        >>> metrics["click"].n, 0.0 <= metrics["click"].auc <= 1.0
        (10, True)
    """
    cat, num = encode_features(data.features, model.features)
    labels = encode_labels(data.labels, model.tasks)
    logits = predict_logits(model, cat, num, batch_size)
    out: dict[str, TaskMetrics] = {}
    for task in model.tasks:
        probs = torch.sigmoid(logits[task.name].double()).numpy()
        y = labels[task.name].numpy()
        if task.parent is not None:
            space = labels[task.parent].numpy() == 1
            probs, y = probs[space], y[space]
        out[task.name] = task_metrics(y, probs)
    return out
