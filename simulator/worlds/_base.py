"""The base of every world with known ground truth.

A world generates logged traffic and knows the truth behind it: for every
logged candidate, the expected label of each task given that the candidate is
examined. Under a position-based examination model that is enough to give the
exact value of any ranking policy from its *exposure*, the examination-weighted
probability of showing each candidate::

    exposure[p, r, n] = sum_k examination[k] * P(policy p puts candidate n of request r in slot k)
    true_value[p, t]  = mean_r sum_n exposure[p, r, n] * expected_rewards[r, n, t]

so estimators and searches can be checked against the truth instead of
against another estimate.

Ragged logs: a world may draw each request's number of candidates and the
number of slots its user sees (:class:`RaggedShape`). A request then shows
``min(K, N_r, depth_r)`` slots, and a policy's value on it is taken on the same
slots: its exposure uses :meth:`~simulator.logs.LoggedTraffic.request_examination`
(``examination[k]`` on the slots the request shows, 0 elsewhere) and fused
scores of ``-inf`` on padding; :meth:`BaseWorld.policy_value` does both.

Chunks: ``generate_chunk(n_requests, start_request_id=..., seed=...)`` draws
requests ``start_request_id .. start_request_id + n_requests - 1`` from a
stream of their own (the world's seed, ``seed`` and the start id), so a log
of any size is made chunk by chunk, the same chunk always the same, and the
true value of a policy is computed per chunk (it is a mean over requests:
weight each chunk's by its number of requests).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from simulator.logs import LoggedTraffic

if TYPE_CHECKING:
    from simulator.policies import BasePolicy

__all__ = ["BaseWorld", "RaggedShape", "parse_range"]


def parse_range(text: str | tuple[int, int] | None, what: str) -> tuple[int, int] | None:
    """``"10:40"`` (or ``(10, 40)``, or ``"25"``) -> ``(10, 40)``, both ends included.

    Raises:
        ValueError: naming ``what``, unless two integers ``1 <= low <= high``.
    """
    if text is None:
        return None
    try:
        if isinstance(text, str):
            parts = [int(x) for x in text.split(":")]
            low, high = (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])
            if len(parts) > 2:
                raise ValueError
        else:
            low, high = (int(x) for x in text)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a range 'low:high' of integers, got {text!r}") from None
    if not 1 <= low <= high:
        raise ValueError(f"{what} must be 'low:high' with 1 <= low <= high, got {text!r}")
    return low, high


@dataclass(frozen=True)
class RaggedShape:
    """How a world draws ragged requests.

    Args:
        candidates: ``(low, high)``: each request's number of candidates is uniform in
            ``low..high`` (both included); None: every request has the world's ``N``.
        shown_slots: ``(low, high)``: the number of slots each request's user sees,
            uniform in ``low..high``; a request shows ``min(K, N_r, that)`` slots (the
            first ones); None: every slot it can fill.
    """

    candidates: tuple[int, int] | None = None
    shown_slots: tuple[int, int] | None = None

    @property
    def ragged(self) -> bool:
        return self.candidates is not None or self.shown_slots is not None

    def draw(self, rng: np.random.Generator, n_requests: int, n_candidates: int,
             slate_size: int) -> tuple[np.ndarray, np.ndarray]:
        """``[R]`` candidates and ``[R]`` shown slots of each request (draws only what
        is ragged, so a dense world's stream is untouched)."""
        counts = np.full(n_requests, n_candidates, dtype=np.int64)
        if self.candidates is not None:
            counts = rng.integers(self.candidates[0], self.candidates[1] + 1, n_requests)
        depth = np.full(n_requests, slate_size, dtype=np.int64)
        if self.shown_slots is not None:
            depth = rng.integers(self.shown_slots[0], self.shown_slots[1] + 1, n_requests)
        return counts.astype(np.int64), np.minimum(np.minimum(depth, slate_size), counts)


class BaseWorld(abc.ABC):
    """A seeded world that generates logged traffic and knows its ground truth.

    Subclasses give the tasks, the examination curve, the traffic, the expected
    reward of every logged candidate, and a way to draw fresh labels for any
    slate (``rollout``); the exact policy value (``true_value``) follows.
    """

    @property
    @abc.abstractmethod
    def tasks(self) -> tuple[str, ...]:
        """Task names, in the order of the last axis of every ``[..., T]`` array."""

    @property
    @abc.abstractmethod
    def examination(self) -> np.ndarray:
        """``[K]`` float64 probability that slot ``k`` is examined; ``examination[0] == 1``."""

    def logging_exposure(self, traffic: LoggedTraffic) -> np.ndarray:
        """``[R, N]`` the logging policy's exposure of ``traffic`` under this world's
        examination curve (:meth:`~simulator.logs.LoggedTraffic.logging_exposure`)."""
        return traffic.logging_exposure(self.examination)

    @abc.abstractmethod
    def generate(self) -> LoggedTraffic:
        """The world's seeded logged traffic (same world, same traffic)."""

    @abc.abstractmethod
    def expected_rewards(self, traffic: LoggedTraffic) -> np.ndarray:
        """Expected label of each task for each candidate, given it is examined.

        Args:
            traffic: a log of this world (``user_ids`` and ``item_ids`` are read).

        Returns:
            ``[R, N, T]`` float64, ``E[label_t | candidate n of request r examined]``
            in the order of ``tasks``.
        """

    @abc.abstractmethod
    def rollout(self, traffic: LoggedTraffic, slates: np.ndarray, seed: int) -> np.ndarray:
        """Show a slate per request and draw examination and labels from the world.

        Args:
            traffic: a log of this world, giving the requests and candidates.
            slates: ``[R, K]`` int candidate indices (into the ``N`` axis), the
                candidate shown in each slot; distinct within a request.
            seed: seed of the draw.

        Returns:
            ``[R, K, T]`` float64 labels of the candidate in each slot.
        """

    def true_value(self, traffic: LoggedTraffic, exposure: np.ndarray) -> np.ndarray:
        """Exact expected label sum per request of each policy, for each task.

        ``true_value[p, t] = sum_{r, n} exposure[p, r, n] * expected_rewards[r, n, t] / R``.

        Args:
            traffic: a log of this world with ``R`` requests of ``N`` candidates.
            exposure: ``[P, R, N]`` ``sum_k examination[k] * P(policy p puts
                candidate n of request r in slot k)``.

        Returns:
            ``[P, T]`` float64, mean over requests of the expected label sum.

        Raises:
            ValueError: if ``exposure`` is not ``[P, R, N]`` for this log.

        Example:
            >>> from simulator.worlds import MarketplaceConfig, MarketplaceWorld
            >>> world = MarketplaceWorld(MarketplaceConfig(n_requests=100))
            >>> traffic = world.generate()
            >>> world.true_value(traffic, world.logging_exposure(traffic)[None]).shape
            (1, 3)
        """
        exposure = np.asarray(exposure, dtype=np.float64)
        r, n = traffic.n_requests, traffic.n_candidates
        if exposure.ndim != 3 or exposure.shape[1:] != (r, n):
            raise ValueError(
                f"exposure must have shape [P, R, N] = [P, {r}, {n}], got {exposure.shape}"
            )
        if traffic.valid is not None and (exposure[:, ~traffic.valid] != 0).any():
            raise ValueError("exposure on padding (no candidate): rank by fused scores that "
                             "are -inf there, e.g. with policy_value")
        rewards = np.asarray(self.expected_rewards(traffic), dtype=np.float64)
        # [P, R*N] @ [R*N, T]: one BLAS call instead of a 3-operand einsum.
        value = exposure.reshape(exposure.shape[0], r * n) @ rewards.reshape(r * n, -1)
        return value / r

    def policy_value(self, traffic: LoggedTraffic, policy: BasePolicy,
                     fused: np.ndarray) -> np.ndarray:
        """``[P, T]`` exact value of ``policy`` ranking by ``fused`` ``[P, R, N]`` scores.

        Padding of a ragged log is never ranked, and each request is valued on the
        slots it shows (:meth:`~simulator.logs.LoggedTraffic.request_examination`):
        the truth the estimators estimate on that log.
        """
        fused = np.asarray(fused)
        if traffic.valid is not None:
            fused = np.where(traffic.valid, fused, -np.inf)
        exposure = policy.exposure(fused, traffic.request_examination(self.examination))
        return self.true_value(traffic, exposure)

    def generate_chunk(self, n_requests: int, start_request_id: int = 0,
                       seed: int = 0) -> LoggedTraffic:
        """Requests ``start_request_id ..`` ``+ n_requests - 1`` from a stream of their own.

        Seeded by the world's seed, ``seed`` and ``start_request_id``: the same call
        gives the same chunk, chunks with other starts are independent draws. Ragged
        when the world's config asks for it. Not the same requests as :meth:`generate`.

        Raises:
            NotImplementedError: a world that cannot draw chunks.
        """
        raise NotImplementedError(f"{type(self).__name__} draws no chunks")
