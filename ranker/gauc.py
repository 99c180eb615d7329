"""Group AUC (GAUC): per-user ROC AUC, averaged with impression weights.

Plain AUC compares a positive of one user with a negative of another, which a
ranker never has to do: it orders one user's candidates. GAUC measures that
within-user ordering:

    GAUC = sum_u n_u * AUC_u / sum_u n_u

over the users ``u`` whose rows hold *both* classes (AUC_u is undefined
otherwise, so those users are left out, weights included); ``n_u`` is the
number of rows of user ``u``. Ties count one half, as in :func:`ranker.auc`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ranker.tasks import TaskSpec

__all__ = ["GroupAUC", "gauc", "group_auc", "task_gauc"]


@dataclass(frozen=True)
class GroupAUC:
    """GAUC with how much of the data it rests on.

    Args:
        value: Impression-weighted mean of per-group AUCs (nan when no group counts).
        n_groups: Groups with both classes, i.e. the groups averaged.
        n_rows: Rows of those groups (the total weight).
    """

    value: float
    n_groups: int
    n_rows: int


def group_auc(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> GroupAUC:
    """Per-group AUC weighted by group size, over groups with both classes.

    Vectorized: one sort by (group, score), ranks averaged over ties within a
    group, then each group's Mann-Whitney U from its positives' rank sum.

    Args:
        labels: ``[n]`` binary labels (positive: > 0.5).
        scores: ``[n]`` scores, higher meaning more likely positive.
        groups: ``[n]`` group keys (user ids), any integer values.

    Returns:
        The :class:`GroupAUC`.

    Example:
        >>> y = np.array([0, 1, 0, 1, 1, 1])
        >>> s = np.array([0.1, 0.9, 0.8, 0.2, 0.5, 0.6])
        >>> g = np.array([1, 1, 2, 2, 3, 3])  # user 3 has one class: left out
        >>> group_auc(y, s, g)
        GroupAUC(value=0.5, n_groups=2, n_rows=4)
    """
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    groups = np.asarray(groups)
    if not (labels.shape == scores.shape == groups.shape) or labels.ndim != 1:
        raise ValueError(
            f"labels {labels.shape}, scores {scores.shape} and groups {groups.shape} "
            "must be one 1-D shape"
        )
    if len(labels) == 0:
        return GroupAUC(float("nan"), 0, 0)
    if not np.isfinite(scores).all():
        raise ValueError(
            f"scores hold a non-finite value at row {int(np.argmin(np.isfinite(scores)))}"
        )
    order = np.lexsort((scores, groups))  # by group, then score
    g, s, pos = groups[order], scores[order], labels[order] > 0.5
    n = len(g)
    new_group = np.r_[True, g[1:] != g[:-1]]
    group_id = np.cumsum(new_group) - 1  # [n] 0..G-1
    starts = np.flatnonzero(new_group)  # [G]
    # Runs of equal (group, score) share the mean of their 1-based within-group ranks.
    new_run = new_group | np.r_[True, s[1:] != s[:-1]]
    run_id = np.cumsum(new_run) - 1
    run_starts = np.flatnonzero(new_run)
    run_ends = np.r_[run_starts[1:], n]  # exclusive
    run_group_start = starts[group_id[run_starts]]
    run_rank = (run_starts + run_ends - 1) / 2.0 - run_group_start + 1.0  # mean rank per run
    rank = run_rank[run_id]  # [n]
    n_g = np.bincount(group_id).astype(np.float64)
    n_pos = np.bincount(group_id, weights=pos.astype(np.float64))
    n_neg = n_g - n_pos
    rank_sum = np.bincount(group_id, weights=np.where(pos, rank, 0.0))
    both = (n_pos > 0) & (n_neg > 0)
    if not both.any():
        return GroupAUC(float("nan"), 0, 0)
    u = rank_sum[both] - n_pos[both] * (n_pos[both] + 1) / 2.0
    auc_g = u / (n_pos[both] * n_neg[both])
    w = n_g[both]
    return GroupAUC(float(np.sum(w * auc_g) / np.sum(w)), int(both.sum()), int(w.sum()))


def gauc(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> float:
    """GAUC as a float: :func:`group_auc`'s value (nan when no group has both classes).

    Args:
        labels: ``[n]`` binary labels.
        scores: ``[n]`` scores.
        groups: ``[n]`` group keys (user ids).

    Example:
        >>> gauc(np.array([0, 1, 1, 0]), np.array([0.2, 0.7, 0.1, 0.3]), np.array([5, 5, 6, 6]))
        0.5
    """
    return group_auc(labels, scores, groups).value


def task_gauc(
    labels: Mapping[str, np.ndarray],
    probs: Mapping[str, np.ndarray],
    groups: np.ndarray,
    tasks: Sequence[TaskSpec],
) -> dict[str, GroupAUC]:
    """GAUC of every task over its sample space (``"after:x"``: the rows with x = 1).

    Args:
        labels: Task -> ``[n]`` labels (a parent task's labels are 0/1).
        probs: Task -> ``[n]`` scores, e.g. :func:`ranker.predict`'s output.
        groups: ``[n]`` user ids.
        tasks: The tasks, with their sample spaces.

    Returns:
        Task -> :class:`GroupAUC`.

    Example:
        >>> y = {"click": np.array([0, 1, 1, 0]), "like": np.array([0, 1, 0, 0])}
        >>> p = {"click": np.array([.1, .9, .8, .2]), "like": np.array([.5, .6, .4, .5])}
        >>> out = task_gauc(y, p, np.array([1, 1, 1, 1]), [TaskSpec("click"),
        ...                 TaskSpec("like", "after:click")])
        >>> out["click"].value, out["like"].value, out["like"].n_rows
        (1.0, 1.0, 2)
    """
    groups = np.asarray(groups)
    out: dict[str, GroupAUC] = {}
    for task in tasks:
        y, p = np.asarray(labels[task.name]), np.asarray(probs[task.name])
        if task.parent is None:
            out[task.name] = group_auc(y, p, groups)
        else:
            space = np.asarray(labels[task.parent]) == 1
            out[task.name] = group_auc(y[space], p[space], groups[space])
    return out
