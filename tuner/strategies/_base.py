"""The ask/tell interface every search strategy implements."""

from __future__ import annotations

import abc
from collections.abc import Iterable

import numpy as np

__all__ = ["BaseStrategy", "checked_tell"]


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


def checked_tell(
    who: str, generation: int, expected: int, dim: int, X: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The arguments of a :meth:`BaseStrategy.tell`, checked: ``(X [M, dim], values [M])``.

    Raises:
        ValueError: a generation out of order (``who`` expects ``expected``), or shapes
            that do not fit ``dim``.
    """
    if generation != expected:
        raise ValueError(
            f"told generation {generation} but {who} expects generation "
            f"{expected} next (tell generations in order)"
        )
    X = np.asarray(X, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if X.ndim != 2 or X.shape[1] != dim or X.shape[0] != values.shape[0]:
        raise ValueError(
            f"tell got X {X.shape} and values {values.shape}; need X [M, {dim}] "
            "and values [M]"
        )
    return X, values
