"""Ranking policies: fused scores -> slates and their expected exposure.

A policy's *exposure* of a candidate is ``sum_k examination[k] * P(candidate
in slot k)``; under the position-based model the expected label sum of a
request is ``sum_n exposure[n] * E[label | examined, n]``, so every estimator
only needs a policy's exposure, deterministic or stochastic alike.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

__all__ = ["BasePolicy", "EpsilonGreedyTopK", "TopKPolicy", "top_k"]


def top_k(fused: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores along the last axis, best first.

    ``torch.topk`` is 3x faster than numpy's ``argpartition`` on this shape on
    the CPU (see ``bench/replay.py``); it is a core dependency anyway.

    Args:
        fused: ``[..., N]`` scores.
        k: slate size, ``1 <= k <= N``.

    Returns:
        ``[..., k]`` int64 candidate indices.
    """
    import torch  # here: 'fusiontune --help' and history never load it

    return torch.topk(torch.from_numpy(np.ascontiguousarray(fused)), k, dim=-1).indices.numpy()


def prefix_match(fused: np.ndarray, positions: np.ndarray, k: int) -> np.ndarray:
    """Whether each logged prefix is the top-``k`` prefix of ``fused``.

    Args:
        fused: ``[P, R, N]`` (or ``[R, N]``) scores.
        positions: ``[R, N]`` logged slot of each candidate, ``-1`` where not shown.
        k: slate size of the policy; logged slots ``>= k`` never match.

    Returns:
        ``fused``-shaped float64: 1 where candidate ``n`` was shown in slot ``j < k``
        and the logged slots ``0..j`` hold the top ``j + 1`` of ``fused`` in order.
    """
    n_slots = int(positions.max(initial=-1)) + 1
    key = np.where(positions >= 0, positions, n_slots)
    logged = np.argsort(key, axis=-1, kind="stable")[:, :n_slots]  # [R, Kl]
    kk = min(k, n_slots)
    greedy = top_k(fused, kk)  # [P, R, kk]
    same = np.cumprod(greedy == logged[:, :kk], axis=-1)  # [P, R, kk]
    same = np.concatenate(
        [same, np.zeros((*same.shape[:-1], n_slots - kk), dtype=same.dtype)], axis=-1)
    slot = np.broadcast_to(np.where(positions >= 0, positions, 0), fused.shape)
    out = np.take_along_axis(same, slot, axis=-1).astype(np.float64)
    return np.where(positions >= 0, out, 0.0)


def _pad_slots(probs: np.ndarray, n_slots: int) -> np.ndarray:
    """``[..., N, k]`` -> ``[..., N, n_slots]``: cut, or pad with zero columns."""
    k = probs.shape[-1]
    if k >= n_slots:
        return probs[..., :n_slots]
    return np.concatenate([probs, np.zeros((*probs.shape[:-1], n_slots - k))], axis=-1)


def slates_to_exposure(
    slates: np.ndarray, n_candidates: int, examination: np.ndarray
) -> np.ndarray:
    """``[..., K]`` slates -> ``[..., N]`` float32 exposure (``examination[k]`` at slot k)."""
    import torch  # here: 'fusiontune --help' and history never load it

    index = torch.from_numpy(np.ascontiguousarray(slates))
    exposure = torch.zeros((*slates.shape[:-1], n_candidates), dtype=torch.float32)
    values = torch.from_numpy(examination.astype(np.float32)).expand(index.shape)
    return exposure.scatter_(-1, index, values).numpy()


class BasePolicy(abc.ABC):
    """A ranking policy over fused scores."""

    k: int

    @abc.abstractmethod
    def exposure(self, fused: np.ndarray, examination: np.ndarray) -> np.ndarray:
        """Expected exposure of each candidate.

        Args:
            fused: ``[P, R, N]`` fused scores of ``P`` weight vectors.
            examination: ``[K]`` examination probability of each slot.

        Returns:
            ``[P, R, N]`` float32 exposure.
        """

    @abc.abstractmethod
    def sample(self, fused: np.ndarray, seed: int) -> np.ndarray:
        """Draw one slate per request: ``[..., N]`` scores -> ``[..., K]`` indices."""

    def slot_probabilities(self, fused: np.ndarray, n_slots: int) -> np.ndarray:
        """``[..., N]`` scores -> ``[..., N, n_slots]`` ``P(n in slot k)`` (0 for ``k >= self.k``).

        Needed by the pseudo-inverse estimator. Raises NotImplementedError for
        policies that do not provide it.
        """
        raise NotImplementedError(f"{type(self).__name__} gives no slot probabilities")

    def prefix_probabilities(self, fused: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Probability that the policy's slate starts with each logged prefix.

        Needed by the reward-interaction IPS estimator (``rips``).

        Args:
            fused: ``[P, R, N]`` (or ``[R, N]``) scores.
            positions: ``[R, N]`` logged slots, ``-1`` where not shown.

        Returns:
            ``fused``-shaped: for a candidate shown in slot ``j``, the probability that
            the policy puts the logged candidates of slots ``0..j`` there; 0 where
            not shown.
        """
        raise NotImplementedError(f"{type(self).__name__} gives no prefix probabilities")


@dataclass(frozen=True)
class TopKPolicy(BasePolicy):
    """Deterministic: show the ``k`` best-scored candidates in score order.

    Example:
        >>> import numpy as np
        >>> TopKPolicy(2).sample(np.array([[0.1, 0.9, 0.5]]), seed=0).tolist()
        [[1, 2]]
    """

    k: int = 5

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"slate size k must be >= 1, got {self.k}")

    def exposure(self, fused: np.ndarray, examination: np.ndarray) -> np.ndarray:
        return slates_to_exposure(top_k(fused, self.k), fused.shape[-1], examination[: self.k])

    def sample(self, fused: np.ndarray, seed: int) -> np.ndarray:
        return top_k(fused, self.k)

    def slot_probabilities(self, fused: np.ndarray, n_slots: int) -> np.ndarray:
        return _pad_slots(EpsilonGreedyTopK(self.k, 0.0).pscores(fused), n_slots)

    def prefix_probabilities(self, fused: np.ndarray, positions: np.ndarray) -> np.ndarray:
        return prefix_match(fused, positions, self.k)


@dataclass(frozen=True)
class EpsilonGreedyTopK(BasePolicy):
    """Stochastic: top-``k`` with prob. ``1 - epsilon``, else a uniform random ordered k-subset.

    Its slot propensities are exact and cheap:
    ``P(n in slot j) = (1 - epsilon) * 1{rank(n) == j} + epsilon / N``, which is
    why the synthetic world logs with it (Plackett-Luce marginals over 5 of 20
    slots cost ``O(N^5)`` per request).

    Example:
        >>> import numpy as np
        >>> pol = EpsilonGreedyTopK(k=1, epsilon=0.5)
        >>> pol.pscores(np.array([[0.1, 0.9]]))[0, :, 0].tolist()
        [0.25, 0.75]
    """

    k: int = 5
    epsilon: float = 0.2

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"slate size k must be >= 1, got {self.k}")
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {self.epsilon}")

    def pscores(self, fused: np.ndarray) -> np.ndarray:
        """``[..., N]`` scores -> ``[..., N, K]`` slot propensities."""
        n = fused.shape[-1]
        greedy = top_k(fused, self.k)
        onehot = np.zeros((*fused.shape, self.k), dtype=np.float64)
        slot = np.broadcast_to(np.arange(self.k), greedy.shape)
        lead = np.indices(greedy.shape)
        onehot[(*lead[:-1], greedy, slot)] = 1.0
        return (1.0 - self.epsilon) * onehot + self.epsilon / n

    def exposure(self, fused: np.ndarray, examination: np.ndarray) -> np.ndarray:
        n = fused.shape[-1]
        greedy = slates_to_exposure(top_k(fused, self.k), n, examination[: self.k])
        uniform = float(examination[: self.k].sum()) / n
        return ((1.0 - self.epsilon) * greedy + self.epsilon * uniform).astype(np.float32)

    def sample(self, fused: np.ndarray, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        greedy = top_k(fused, self.k)
        random_order = np.argsort(rng.random(fused.shape), axis=-1)[..., : self.k]
        explore = rng.random(fused.shape[:-1]) < self.epsilon
        return np.where(explore[..., None], random_order, greedy)

    def slot_probabilities(self, fused: np.ndarray, n_slots: int) -> np.ndarray:
        return _pad_slots(self.pscores(fused), n_slots)

    def prefix_probabilities(self, fused: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """``(1 - eps) * 1{prefix is the greedy one} + eps * prod_{i <= j} 1 / (N - i)``.

        The second term is the probability that a uniform random ordered
        ``k``-subset starts with ``j + 1`` given distinct candidates. Used both
        for a target policy and, with the logging scores, to write a log's
        ``prefix_pscore`` column.
        """
        n = fused.shape[-1]
        uniform = np.cumprod(1.0 / (n - np.arange(max(self.k, 1))))  # [k]
        slot = np.where(positions >= 0, positions, 0)
        in_slate = (positions >= 0) & (positions < self.k)
        explore = np.where(in_slate, uniform[np.minimum(slot, self.k - 1)], 0.0)
        greedy = prefix_match(fused, positions, self.k)
        return (1.0 - self.epsilon) * greedy + self.epsilon * explore
