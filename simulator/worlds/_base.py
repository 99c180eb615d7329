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
"""

from __future__ import annotations

import abc

import numpy as np

from simulator.logs import LoggedTraffic

__all__ = ["BaseWorld"]


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
        rewards = np.asarray(self.expected_rewards(traffic), dtype=np.float64)
        # [P, R*N] @ [R*N, T]: one BLAS call instead of a 3-operand einsum.
        value = exposure.reshape(exposure.shape[0], r * n) @ rewards.reshape(r * n, -1)
        return value / r
