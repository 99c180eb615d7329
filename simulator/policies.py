"""Ranking policies: fused scores -> slates and their expected exposure.

A policy's *exposure* of a candidate is ``sum_k examination[k] * P(candidate
in slot k)``; under the position-based model the expected label sum of a
request is ``sum_n exposure[n] * E[label | examined, n]``, so every estimator
only needs a policy's exposure, deterministic or stochastic alike.

Ragged requests: a fused score of ``-inf`` marks padding, no candidate. A
policy never shows it: a request with ``N_r`` candidates fills
``min(k, N_r)`` slots (top-K shows what it has; the epsilon-greedy logger's
random slate is an ordered subset of the ``N_r``). The examination curve may
be ``[K]`` or one per request ``[R, K]`` (0 on the slots a request's user does
not see, :meth:`~simulator.logs.LoggedTraffic.request_examination`). Without
``-inf`` scores and with a ``[K]`` curve every method computes exactly what it
did before ragged requests existed.
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
        k: slate size, ``>= 1``; more than ``N`` gives ``N``.

    Returns:
        ``[..., min(k, N)]`` int64 candidate indices (of ``-inf`` padding too, last,
        where a request has fewer than ``k`` candidates: see :func:`top_k_values`).
    """
    return top_k_values(fused, k)[0]


def top_k_values(fused: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`top_k`'s indices and the scores at them (``-inf``: padding, no candidate)."""
    import torch  # here: 'fusiontune --help' and history never load it

    top = torch.topk(torch.from_numpy(np.ascontiguousarray(fused)), min(k, fused.shape[-1]),
                     dim=-1)
    return top.indices.numpy(), top.values.numpy()


def candidate_counts(fused: np.ndarray) -> np.ndarray | None:
    """``fused.shape[:-1]`` number of candidates (scores above ``-inf``); None if all are."""
    counts = (fused > -np.inf).sum(axis=-1)
    return None if (counts == fused.shape[-1]).all() else counts


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
    logged = np.full((positions.shape[0], n_slots), -1, dtype=np.int64)  # [R, Kl]
    rr, cc = np.nonzero(positions >= 0)
    logged[rr, positions[rr, cc]] = cc  # -1 in a slot a request does not show
    kk = min(k, n_slots, fused.shape[-1])
    greedy = top_k(fused, kk)  # [P, R, kk]
    same = np.cumprod(greedy == logged[:, :kk], axis=-1)  # [P, R, kk]
    same = np.concatenate(
        [same, np.zeros((*same.shape[:-1], n_slots - kk), dtype=same.dtype)], axis=-1)
    slot = np.broadcast_to(np.where(positions >= 0, positions, 0), fused.shape)
    out = np.take_along_axis(same, slot, axis=-1).astype(np.float64)
    return np.where(positions >= 0, out, 0.0)


def _greedy_at_logged_slot(fused: np.ndarray, positions: np.ndarray, k: int) -> np.ndarray:
    """``fused``-shaped float64: 1 where a shown candidate is the top-``k`` pick of its
    logged slot (a slot ``>= k`` never), else 0."""
    greedy = top_k(fused, k)  # [..., kk]
    kk = greedy.shape[-1]
    in_slate = (positions >= 0) & (positions < kk)
    slot = np.broadcast_to(np.where(in_slate, positions, 0), fused.shape)
    pick = np.take_along_axis(greedy, slot, axis=-1)  # [..., N] the pick of n's slot
    return np.where(in_slate & (pick == np.arange(fused.shape[-1])), 1.0, 0.0)


def _pad_slots(probs: np.ndarray, n_slots: int) -> np.ndarray:
    """``[..., N, k]`` -> ``[..., N, n_slots]``: cut, or pad with zero columns."""
    k = probs.shape[-1]
    if k >= n_slots:
        return probs[..., :n_slots]
    return np.concatenate([probs, np.zeros((*probs.shape[:-1], n_slots - k))], axis=-1)


def slates_to_exposure(
    slates: np.ndarray, n_candidates: int, examination: np.ndarray
) -> np.ndarray:
    """``[..., K]`` slates -> ``[..., N]`` float32 exposure (``examination[k]`` at slot k).

    ``examination`` is ``[K]`` or anything that broadcasts to ``slates`` (``[R, K]``: a
    curve per request; ``[..., K]``: a weight per slate entry, 0 for an empty slot).
    """
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
            fused: ``[P, R, N]`` fused scores of ``P`` weight vectors (``-inf``: padding).
            examination: ``[K]`` examination probability of each slot, or ``[R, K]`` one
                curve per request.

        Returns:
            ``[P, R, N]`` float32 exposure.
        """

    @abc.abstractmethod
    def sample(self, fused: np.ndarray, seed: int) -> np.ndarray:
        """Draw one slate per request: ``[..., N]`` scores -> ``[..., K]`` indices.

        ``K = min(k, N)``; a slot a request with fewer candidates cannot fill holds ``-1``.
        """

    def logged_slot_probabilities(self, fused: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """``[P, R, N]`` probability that the policy puts each shown candidate in its
        logged slot (0 where not shown): the numerator of the slot-wise estimators.

        Args:
            fused: ``[P, R, N]`` (or ``[R, N]``) scores.
            positions: ``[R, N]`` logged slots, ``-1`` where not shown.
        """
        n_slots = max(int(positions.max(initial=-1)) + 1, 1)
        probs = self.slot_probabilities(fused, n_slots)  # [..., N, n_slots]
        slot = np.broadcast_to(np.where(positions >= 0, positions, 0)[..., None],
                               (*fused.shape, 1))
        out = np.take_along_axis(probs, slot, axis=-1)[..., 0]
        return np.where(positions >= 0, out, 0.0)

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
        slates, values = top_k_values(fused, self.k)
        exam = examination[..., : slates.shape[-1]]
        if np.isneginf(values[..., -1]).any():  # a request with fewer than k candidates
            exam = np.where(np.isneginf(values), 0.0, exam).astype(np.float32)
        return slates_to_exposure(slates, fused.shape[-1], exam)

    def sample(self, fused: np.ndarray, seed: int) -> np.ndarray:
        slates, values = top_k_values(fused, self.k)
        return np.where(np.isneginf(values), -1, slates)

    def logged_slot_probabilities(self, fused: np.ndarray, positions: np.ndarray) -> np.ndarray:
        return _greedy_at_logged_slot(fused, positions, self.k)

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
        """``[..., N]`` scores -> ``[..., N, K]`` slot propensities (0 on padding, and in
        the slots ``>= N_r`` a request with ``N_r`` candidates cannot fill)."""
        n = fused.shape[-1]
        greedy, values = top_k_values(fused, self.k)
        kk = greedy.shape[-1]
        onehot = np.zeros((*fused.shape, self.k), dtype=np.float64)
        slot = np.broadcast_to(np.arange(kk), greedy.shape)
        lead = np.indices(greedy.shape)
        counts = candidate_counts(fused)
        if counts is None:
            onehot[(*lead[:-1], greedy, slot)] = 1.0
            return (1.0 - self.epsilon) * onehot + self.epsilon / n
        onehot[(*lead[:-1], greedy, slot)] = values > -np.inf
        fills = np.arange(self.k) < counts[..., None]  # [..., K] slots the request fills
        uniform = (fused > -np.inf)[..., None] & fills[..., None, :]
        return (1.0 - self.epsilon) * onehot + self.epsilon * uniform / counts[..., None, None]

    def exposure(self, fused: np.ndarray, examination: np.ndarray) -> np.ndarray:
        n = fused.shape[-1]
        counts = candidate_counts(fused)
        if counts is None and examination.ndim == 1:
            greedy = slates_to_exposure(top_k(fused, self.k), n, examination[: self.k])
            uniform = float(examination[: self.k].sum()) / n
            return ((1.0 - self.epsilon) * greedy + self.epsilon * uniform).astype(np.float32)
        greedy = TopKPolicy(self.k).exposure(fused, examination)
        if counts is None:
            counts = np.full(fused.shape[:-1], n)
        exam = np.broadcast_to(examination[..., : self.k], (*fused.shape[:-1], min(self.k, n)))
        fills = np.arange(exam.shape[-1]) < counts[..., None]
        uniform = (exam * fills).sum(axis=-1) / counts  # [P, R]
        out = (1.0 - self.epsilon) * greedy + self.epsilon * uniform[..., None] * (fused > -np.inf)
        return out.astype(np.float32)

    def sample(self, fused: np.ndarray, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        greedy, values = top_k_values(fused, self.k)
        keys = rng.random(fused.shape)
        counts = candidate_counts(fused)
        if counts is not None:  # padding sorts after every candidate
            keys = np.where(fused > -np.inf, keys, 2.0)
        random_order = np.argsort(keys, axis=-1)[..., : greedy.shape[-1]]
        explore = rng.random(fused.shape[:-1]) < self.epsilon
        slates = np.where(explore[..., None], random_order, greedy)
        if counts is None:
            return slates
        return np.where(np.arange(slates.shape[-1]) < counts[..., None], slates, -1)

    def logged_slot_probabilities(self, fused: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """``(1 - eps) 1{greedy in the logged slot} + eps / N_r`` on slots ``< min(k, N_r)``."""
        counts = candidate_counts(fused)
        n = np.full(fused.shape[:-1], fused.shape[-1]) if counts is None else counts
        in_slate = (positions >= 0) & (positions < np.minimum(self.k, n)[..., None])
        explore = np.where(in_slate, 1.0 / n[..., None], 0.0)
        greedy = _greedy_at_logged_slot(fused, positions, self.k)
        return (1.0 - self.epsilon) * greedy + self.epsilon * explore

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
        slot = np.where(positions >= 0, positions, 0)
        in_slate = (positions >= 0) & (positions < self.k)
        counts = candidate_counts(fused)
        if counts is None:
            uniform = np.cumprod(1.0 / (n - np.arange(max(self.k, 1))))  # [k]
            explore = np.where(in_slate, uniform[np.minimum(slot, self.k - 1)], 0.0)
        else:  # a request's own number of candidates
            left = counts[..., None] - np.arange(max(self.k, 1))  # [..., k]
            with np.errstate(divide="ignore"):
                per = np.cumprod(np.where(left > 0, 1.0 / np.maximum(left, 1), 0.0), axis=-1)
            slot_b = np.broadcast_to(np.minimum(slot, self.k - 1), fused.shape)
            explore = np.where(in_slate, np.take_along_axis(per, slot_b, axis=-1), 0.0)
        greedy = prefix_match(fused, positions, self.k)
        return (1.0 - self.epsilon) * greedy + self.epsilon * explore
