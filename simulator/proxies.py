"""Fused-score AUC proxies: ordering scores of a population of weight vectors.

A cheap proxy many teams tune fusion weights on: fuse the ranker's scores with a
weight vector, then ask how well the fused score separates the logged positives of
each task from its logged negatives, on the impressions the logging policy showed:

* global AUC: over all shown impressions of the log, per task;
* GAUC: AUC within each request, averaged over the requests that hold both a
  positive and a negative label of the task (impression-weighted by default: each
  request counts with its number of shown impressions; request-weighted on request);

and combine the per-task AUCs with the objective's weights, ``sum_t c_t AUC_t /
sum_t c_t``. These are **ordering scores**, not estimates: they have no unit and no
interval, are biased for any business metric (a fused score that sorts the logged
impressions well need not earn more in its top K), and say nothing of magnitudes.
What they can do is order vectors, with little noise, because every labelled
impression counts for every vector. :mod:`bench.ordering_quality` measures how well.

Ties count one half (the Mann-Whitney statistic with average ranks); scores are fused
by the formula's own ``fuse``, as the replay ranks them, so its ties are the replay's.
A label is positive when it is ``> 0``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from simulator.estimators._base import SlateFeedback
from simulator.fusion._base import BaseFusion

__all__ = ["ORDERING_SCORES", "AUCProxy", "OrderingScores", "auc_reference",
           "gauc_reference"]

ORDERING_SCORES = ("auc", "gauc")
"""The proxies a search can rank its trials by (``search run --estimator auc|gauc``): the
combined global AUC and GAUC of :class:`OrderingScores`."""


@dataclass(frozen=True)
class OrderingScores:
    """Fused-score AUCs of ``P`` weight vectors: ordering scores, not estimates.

    Higher means "ranks the logged labels better"; there is no unit, no interval
    and no claim on the value a vector would earn.

    Args:
        tasks: task names, the order of the ``T`` axis.
        auc: ``[P, T]`` global AUC of the fused score over the shown impressions
            (nan for a task without both labels in the log).
        gauc: ``[P, T]`` per-request AUC averaged over requests with both labels.
        combine: ``[T]`` weights the tasks are combined with (the objective's).
        auc_combined: ``[P]`` ``sum_t combine_t auc_t / sum_t combine_t``.
        gauc_combined: ``[P]`` the same of ``gauc``.
        gauc_requests: ``[T]`` how many requests each task's GAUC averages over.
        gauc_weighting: ``"impressions"`` or ``"requests"``.
    """

    tasks: tuple[str, ...]
    auc: np.ndarray
    gauc: np.ndarray
    combine: np.ndarray
    auc_combined: np.ndarray
    gauc_combined: np.ndarray
    gauc_requests: np.ndarray
    gauc_weighting: str

    kind: ClassVar[str] = "ordering score"

    def __len__(self) -> int:
        return int(self.auc.shape[0])


@dataclass(frozen=True)
class AUCProxy:
    """Global AUC and GAUC of fused scores on a log, for a population in one pass.

    Args:
        feedback: the log (labels and which candidates were shown).
        scores: ``[R, N, S]`` per-task model scores of every logged candidate.
        score_tasks: names of the ``S`` score columns, the order of a weight vector.
        fusion: the fusion formula.
        gauc_weighting: ``"impressions"`` (each request weighs its number of shown
            impressions, the usual GAUC) or ``"requests"`` (each request weighs 1).
        chunk_requests: requests per GAUC pass (memory ``~ P * chunk * K^2`` bytes).

    Example:
        >>> proxy = AUCProxy(feedback, scores, ("click", "like"), MultiplicativeFusion())
        ... # doctest: +SKIP
        >>> proxy.evaluate(np.array([[1.0, 0.5]]), {"click": 1, "like": 3}).gauc_combined
        ... # doctest: +SKIP
    """

    feedback: SlateFeedback
    scores: np.ndarray
    score_tasks: tuple[str, ...]
    fusion: BaseFusion
    gauc_weighting: str = "impressions"
    chunk_requests: int = 2000

    def __post_init__(self) -> None:
        r, n = self.feedback.shown.shape
        if self.scores.shape != (r, n, len(self.score_tasks)):
            raise ValueError(
                f"scores must have shape [R, N, S] = {(r, n, len(self.score_tasks))} for "
                f"score tasks {list(self.score_tasks)}, got {self.scores.shape}")
        if self.gauc_weighting not in ("impressions", "requests"):
            raise ValueError(f"gauc_weighting must be 'impressions' or 'requests', "
                             f"got {self.gauc_weighting!r}")
        if self.chunk_requests < 1:
            raise ValueError(f"chunk_requests must be >= 1, got {self.chunk_requests}")
        shown = self.feedback.shown
        # the shown candidates of each request, left-aligned: [R, K] indices and a mask
        kmax = max(int(shown.sum(axis=1).max(initial=0)), 1)
        order = np.argsort(~shown, axis=1, kind="stable")[:, :kmax]
        valid = np.take_along_axis(shown, order, axis=1)
        # ragged requests: a rank-based formula ranks a request's candidates, not its padding
        transformed = self.fusion.prepare(self.scores, self.feedback.valid)
        rows = np.arange(r)[:, None]
        labels = self.feedback.rewards[rows, order] > 0  # [R, K, T]
        object.__setattr__(self, "_slot_x", transformed[rows, order])  # [R, K, S]
        object.__setattr__(self, "_valid", valid)
        object.__setattr__(self, "_slot_y", labels & valid[..., None])
        flat = shown.reshape(-1)
        object.__setattr__(self, "_flat_x", transformed.reshape(r * n, -1)[flat])  # [I, S]
        object.__setattr__(self, "_flat_y", self.feedback.rewards.reshape(r * n, -1)[flat] > 0)

    def per_task(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``auc [P, T]``, ``gauc [P, T]`` and ``gauc_requests [T]`` of ``weights [P, S]``."""
        w = self.fusion.validate_weights(weights, self.score_tasks)
        x: np.ndarray = self.__dict__["_flat_x"]
        y: np.ndarray = self.__dict__["_flat_y"]
        # ranked a block of vectors at a time: [block, I] float64 per block
        # fused as the replay fuses (the formula's own fuse, float32), so ties are its ties
        auc = np.concatenate([_auc_columns(self.fusion.fuse(x[None], w[a:a + 16])[:, 0].copy(), y)
                              for a in range(0, w.shape[0], 16)])  # [P, T]
        sx: np.ndarray = self.__dict__["_slot_x"]
        sy: np.ndarray = self.__dict__["_slot_y"]
        valid: np.ndarray = self.__dict__["_valid"]
        p, t = w.shape[0], y.shape[1]
        total, weight_sum = np.zeros((p, t)), np.zeros(t)
        count = np.zeros(t, dtype=np.int64)
        for start in range(0, sx.shape[0], self.chunk_requests):
            sl = slice(start, start + self.chunk_requests)
            f = self.fusion.fuse(sx[sl], w)  # [P, c, K]
            a, ok = _request_auc(f, sy[sl], valid[sl])  # [P, c, T], [c, T]
            rw = (valid[sl].sum(axis=1).astype(np.float64) if self.gauc_weighting
                  == "impressions" else np.ones(ok.shape[0]))  # [c]
            wt = ok * rw[:, None]  # [c, T]
            total += np.einsum("prt,rt->pt", np.nan_to_num(a), wt)
            weight_sum += wt.sum(axis=0)
            count += ok.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            gauc = np.where(weight_sum > 0, total / weight_sum, np.nan)
        return auc, gauc, count

    def evaluate(self, weights: np.ndarray, objective: Mapping[str, float]) -> OrderingScores:
        """The ordering scores of a population ``[P, S]`` (or ``[S]``) of weight vectors.

        Args:
            weights: fusion weight vectors, one weight per score task.
            objective: task -> weight of the business objective; tasks of the log
                it leaves out weigh 0.

        Raises:
            ValueError: an objective naming a task the log does not have, or with
                weights that are negative, non-finite or all 0.
        """
        tasks = self.feedback.tasks
        unknown = [k for k in objective if k not in tasks]
        if unknown:
            raise ValueError(f"objective names unknown task(s) {unknown}; valid: {list(tasks)}")
        c = np.array([float(objective.get(k, 0.0)) for k in tasks])
        if not np.isfinite(c).all() or (c < 0).any() or c.sum() <= 0:
            raise ValueError(f"objective weights must be finite, >= 0 and not all 0 to "
                             f"combine AUCs, got {dict(objective)}")
        auc, gauc, count = self.per_task(weights)
        return OrderingScores(
            tasks=tasks, auc=auc, gauc=gauc, combine=c,
            auc_combined=_combine(auc, c), gauc_combined=_combine(gauc, c),
            gauc_requests=count, gauc_weighting=self.gauc_weighting)


def _combine(auc: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``[P]`` weighted mean of the per-task AUCs; tasks without an AUC (nan) drop out."""
    have = np.isfinite(auc)
    wc = have * c[None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(wc.sum(axis=1) > 0,
                        (np.nan_to_num(auc) * wc).sum(axis=1) / wc.sum(axis=1), np.nan)


def _auc_columns(fused: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``[P, T]`` AUC of each row of ``fused [P, I]`` for each label column ``y [I, T]``.

    Mann-Whitney with average ranks: ``(sum of positives' ranks - n1 (n1 + 1) / 2) /
    (n1 n0)``; one sort per vector serves every task.
    """
    ranks = _average_ranks(fused)  # [P, I]
    n1 = y.sum(axis=0).astype(np.float64)  # [T]
    n0 = y.shape[0] - n1
    pos_rank = ranks @ y.astype(np.float64)  # [P, T]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n1 > 0) & (n0 > 0),
                        (pos_rank - n1 * (n1 + 1) / 2) / (n1 * n0), np.nan)


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """``[P, I]`` 1-based ranks within each row, ties given their average rank.

    ``scipy.stats.rankdata(x, axis=1)``, vectorised over the rows (rankdata loops).
    """
    p, i = x.shape
    order = np.argsort(x, axis=1)  # the order within a tie does not matter
    v = np.take_along_axis(x, order, axis=1)
    new = np.ones((p, i), dtype=bool)
    new[:, 1:] = v[:, 1:] != v[:, :-1]
    starts = np.flatnonzero(new.reshape(-1))  # flat index of each tie group's first
    sizes = np.diff(np.append(starts, p * i))
    group = np.cumsum(new.reshape(-1)) - 1  # [P * I] tie group of each sorted entry
    average = (starts % i) + (sizes + 1) / 2.0  # [groups] 1-based mean rank of the group
    ranks = np.empty((p, i))
    np.put_along_axis(ranks, order, average[group].reshape(p, i), axis=1)
    return ranks


def _request_auc(f: np.ndarray, y: np.ndarray, valid: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per-request AUC ``[P, R, T]`` of fused scores ``f [P, R, K]`` and where it exists.

    Args:
        f: fused scores of the left-aligned shown candidates.
        y: ``[R, K, T]`` positive labels (False off ``valid``).
        valid: ``[R, K]`` which slots hold a shown candidate.

    Returns:
        the AUC (nan where undefined) and ``[R, T]`` whether the request has both a
        positive and a negative label. Mann-Whitney within each request: a shown
        candidate's average rank among the request's shown ones is ``#lower + (#equal +
        1) / 2`` (``#equal`` counting itself).
    """
    n1 = y.sum(axis=1).astype(np.float64)  # [R, T]
    n0 = valid.sum(axis=1)[:, None] - n1
    ranks = np.full(f.shape, 0.5)  # [P, R, K]: 1/2 for a candidate's tie with itself
    for j in range(f.shape[2]):  # K small passes beat a [P, R, K, K] reduction 10x
        fj, vj = f[:, :, j:j + 1], valid[None, :, j:j + 1]
        ranks += ((fj < f) + 0.5 * (fj == f)) * vj
    pos_rank = np.einsum("prk,rkt->prt", ranks, y.astype(np.float64))
    ok = (n1 > 0) & (n0 > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (pos_rank - (n1 * (n1 + 1) / 2)[None]) / (n1 * n0)[None]
    return np.where(ok[None], auc, np.nan), ok


def auc_reference(score: np.ndarray, label: np.ndarray) -> float:
    """AUC of one score vector against binary labels, by counting pairs (slow, for tests)."""
    pos, neg = score[label > 0], score[label <= 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    d = pos[:, None] - neg[None, :]
    return float(((d > 0).sum() + 0.5 * (d == 0).sum()) / (len(pos) * len(neg)))


def gauc_reference(score: np.ndarray, label: np.ndarray, groups: Sequence[np.ndarray],
                   weighting: str = "impressions") -> float:
    """GAUC by a loop over groups of indices (slow, for tests); nan without any group
    holding both labels."""
    total = weight = 0.0
    for g in groups:
        a = auc_reference(score[g], label[g])
        if np.isfinite(a):
            wg = float(len(g)) if weighting == "impressions" else 1.0
            total += wg * a
            weight += wg
    return total / weight if weight > 0 else float("nan")
