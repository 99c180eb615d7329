"""A reward model calibrated on the log itself, cross-fitted over requests.

The ranker's scores are the natural reward model of the direct method and doubly
robust, but a ranker's score is not ``E[label | examined, score]``: candidates a
policy puts on top for their high scores are, on average, worse than their scores
say (regression to the mean), so the direct method over-rates the policies that
lean hardest on a noisy score. Refitting the scores to the logged labels fixes the
level and that shrinkage: for every task ``t`` a log-linear (Poisson) model

``E[y_t | shown in slot k] = examination[k] * exp(b_t0 + sum_s (b_ts l_s + c_ts (l_s - m_s)^2))``

over the log ``l_s = log q_s`` of every task's score and its centred square (``2 T + 1``
coefficients a task; the squares let frequent tasks saturate), fitted by
Newton's method on the shown impressions. Requests are split into ``folds`` by their
index (``r % folds``); each fold's candidates are predicted by the coefficients
fitted on the other folds, so a request's own labels never enter its prediction
(cross-fitting: the doubly robust correction stays mean-zero).
"""

from __future__ import annotations

import numpy as np

__all__ = ["calibrate", "fit_poisson"]

_FLOOR = 1e-6


def fit_poisson(x: np.ndarray, y: np.ndarray, offset: np.ndarray, start: np.ndarray,
                weight: np.ndarray | None = None, iterations: int = 50,
                ridge: float = 1e-6) -> np.ndarray:
    """Coefficients ``[F]`` of ``E[y] = exp(offset + x @ b)`` by damped Newton steps.

    Args:
        x: ``[I, F]`` features.
        y: ``[I]`` non-negative labels.
        offset: ``[I]`` known log-scale offset (here the log examination).
        start: ``[F]`` starting coefficients.
        iterations: most Newton steps.
        ridge: added to the Hessian's diagonal (identifiability of flat features).
    """
    b = start.astype(np.float64).copy()
    wt = np.ones(len(y)) if weight is None else weight.astype(np.float64)
    y = y * wt

    def loglik(beta: np.ndarray) -> float:
        eta = offset + x @ beta
        return float(y @ eta - wt @ np.exp(eta))

    current = loglik(b)
    for _ in range(iterations):
        mu = wt * np.exp(offset + x @ b)
        grad = x.T @ (y - mu)
        hess = (x * mu[:, None]).T @ x + ridge * np.eye(x.shape[1])
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while t > 1e-4:
            trial = loglik(b + t * step)
            if trial >= current:
                break
            t /= 2.0
        else:
            break
        b, improvement, current = b + t * step, trial - current, trial
        if improvement < 1e-10 * max(1.0, abs(current)):
            break
    return b


def calibrate(rewards: np.ndarray, shown: np.ndarray, slot_examination: np.ndarray,
              reward_model: np.ndarray, folds: int = 2) -> np.ndarray:
    """``[R, N, T]`` cross-fitted calibrated ``E[label | examined]`` of every candidate.

    Args:
        rewards: ``[R, N, T]`` observed labels (0 where not shown).
        shown: ``[R, N]`` bool.
        slot_examination: ``[R, N]`` examination of the logged slot (0 where not shown).
        reward_model: ``[R, N, T]`` the scores to calibrate (the ranker's predictions).
        folds: number of request folds (>= 2).

    A task without a single positive label keeps its scores (nothing to fit).
    """
    r, n, t = rewards.shape
    logs = np.log(np.clip(reward_model.astype(np.float64), _FLOOR, None))
    # centred squares: the log-linear fit saturates neither for frequent tasks nor at the top
    logs_c = logs - logs[shown].mean(axis=0)
    feats = np.concatenate([np.ones((r, n, 1)), logs, logs_c ** 2], axis=2)  # [R, N, 1 + 2T]
    fold = np.arange(r) % folds  # [R]
    out = np.empty((r, n, t), dtype=np.float64)
    for task in range(t):
        y_all = rewards[..., task]
        if not (y_all[shown] > 0).any():
            out[..., task] = reward_model[..., task]
            continue
        for k in range(folds):
            train = shown & (fold != k)[:, None]
            x, y = feats[train], y_all[train].astype(np.float64)
            offset = np.log(slot_examination[train].astype(np.float64))
            start = np.zeros(feats.shape[2])
            start[1 + task] = 1.0
            level = y.sum() / max(float(np.exp(offset + x @ start).sum()), 1e-300)
            start[0] = np.log(max(level, 1e-300))
            b = fit_poisson(x, y, offset, start)
            rows = fold == k
            out[rows, :, task] = np.exp(feats[rows] @ b)
    return np.clip(out, 0.0, 1.0).astype(np.float32)
