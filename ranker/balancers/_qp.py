"""The min-norm QP over the simplex with bounds: ``min_w w^T G w, sum w = 1, lo <= w <= hi``.

Solved by accelerated projected gradient (FISTA with adaptive restart) in
float64, with an exact projection onto the bounded simplex; the problem is
``T x T`` (one row per task), so a few hundred iterations cost milliseconds.
"""

from __future__ import annotations

import numpy as np

__all__ = ["min_norm_weights", "project_bounded_simplex"]


def project_bounded_simplex(v: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Euclidean projection of ``v`` onto ``{w : sum w = 1, lower <= w <= upper}``.

    The projection is ``clip(v - tau, lower, upper)`` for the ``tau`` where
    the sum is 1; the sum is piecewise linear in ``tau`` with breakpoints
    ``v - upper`` and ``v - lower``, so ``tau`` is found exactly between two of them.
    Needs ``sum lower <= 1 <= sum upper``.

    Example:
        >>> project_bounded_simplex(np.array([2.0, 0.0]), np.zeros(2), np.array([0.7, 1.0]))
        array([0.7, 0.3])
    """
    breaks = np.sort(np.concatenate([v - upper, v - lower]))  # [2T]
    sums = np.clip(v[None, :] - breaks[:, None], lower, upper).sum(axis=1)  # [2T] non-increasing
    k = int(np.nonzero(sums >= 1.0)[0][-1]) if sums[0] >= 1.0 else 0
    if k == len(breaks) - 1 or sums[k] == sums[k + 1]:
        tau = breaks[k]
    else:
        tau = breaks[k] + (sums[k] - 1.0) / (sums[k] - sums[k + 1]) * (breaks[k + 1] - breaks[k])
    return np.clip(v - tau, lower, upper)


def min_norm_weights(
    gram: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    start: np.ndarray | None = None,
    tol: float = 1e-10,
    max_iter: int = 20_000,
) -> np.ndarray:
    """Weights in the bounded simplex minimizing ``||sum_k w_k g_k||^2 = w^T G w``.

    Args:
        gram: ``[T, T]`` Gram matrix ``G = g g^T`` of the task gradients.
        lower: ``[T]`` lower bounds, ``sum lower <= 1``.
        upper: ``[T]`` upper bounds, ``sum upper >= 1``.
        start: ``[T]`` warm start (projected first); default uniform.
        tol: Stop when an iteration moves ``w`` by less than this (max norm).
        max_iter: Iteration cap.

    Returns:
        ``[T]`` weights.

    Example:
        >>> g = np.array([[1.0, 0.0], [0.0, 1.0]])
        >>> min_norm_weights(g @ g.T, np.zeros(2), np.ones(2)).round(6)
        array([0.5, 0.5])
    """
    gram = np.asarray(gram, dtype=np.float64)
    lower = np.asarray(lower, dtype=np.float64)
    upper = np.asarray(upper, dtype=np.float64)
    n = gram.shape[0]
    w = np.full(n, 1.0 / n) if start is None else np.asarray(start, dtype=np.float64)
    w = project_bounded_simplex(w, lower, upper)
    lipschitz = float(np.linalg.eigvalsh(gram)[-1])
    if not lipschitz > 0:  # all gradients zero: every feasible point is optimal
        return w
    scaled = gram / lipschitz  # gradient step 1 on the scaled problem
    y, t = w, 1.0
    for _ in range(max_iter):
        w_next = project_bounded_simplex(y - scaled @ y, lower, upper)
        if np.max(np.abs(w_next - w)) < tol:
            return w_next
        if np.dot(y - w_next, w_next - w) > 0:  # momentum points uphill: restart
            t_next, y = 1.0, w_next
        else:
            t_next = (1.0 + np.sqrt(1.0 + 4.0 * t * t)) / 2.0
            y = w_next + (t - 1.0) / t_next * (w_next - w)
        w, t = w_next, t_next
    return w
