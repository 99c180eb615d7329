"""The ask/tell interface every search strategy implements."""

from __future__ import annotations

import abc
from collections.abc import Iterable

import numpy as np

__all__ = ["BaseStrategy"]


class BaseStrategy(abc.ABC):
    """A population-based search strategy driven by ask/tell.

    The loop that evaluates points and the storage that persists them live elsewhere; a
    strategy only proposes (:meth:`ask`) and ingests (:meth:`tell`). Because its state is a
    deterministic function of what it was told, :meth:`replay` rebuilds it from stored
    results, so no strategy state ever needs to be persisted.
    """

    @abc.abstractmethod
    def ask(self, generation: int) -> np.ndarray:
        """Propose the population of one generation.

        Args:
            generation: generation number, from 0.

        Returns:
            ``X [M, dim]``, a deterministic function of the strategy's current state, its
            seed and ``generation``.
        """

    @abc.abstractmethod
    def tell(self, generation: int, X: np.ndarray, values: np.ndarray) -> None:
        """Ingest the results of one generation.

        Args:
            generation: generation number; must be the next one the strategy expects.
            X: evaluated points ``[M, dim]``.
            values: objective values ``[M]`` (maximised); NaN marks a failed evaluation.
        """

    @abc.abstractmethod
    def reset(self) -> None:
        """Return to the initial state (before generation 0)."""

    def pick(self) -> np.ndarray:
        """The point ``x [dim]`` the strategy recommends exporting now (denoised where it can
        be, e.g. CEM's mean rather than its best noisy trial)."""
        raise NotImplementedError(f"{type(self).__name__} does not recommend a point")

    def replay(self, history: Iterable[tuple[np.ndarray, np.ndarray]]) -> None:
        """Reset, then tell each completed generation ``(X [M, dim], values [M])`` in order."""
        self.reset()
        for generation, (X, values) in enumerate(history):
            self.tell(generation, X, values)
