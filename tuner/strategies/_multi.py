"""The ask/tell interface of multi-objective search strategies (Pareto fronts)."""

from __future__ import annotations

import abc
from collections.abc import Iterable

import numpy as np

__all__ = ["BaseMultiStrategy", "checked_tell_multi"]


class BaseMultiStrategy(abc.ABC):
    """A population-based search for the Pareto front of ``K`` metrics, driven by ask/tell.

    Like :class:`~tuner.strategies.BaseStrategy`, but :meth:`tell` takes one value per
    metric. Every metric is maximised (the caller negates a metric to be minimised); a row
    with a NaN marks a failed or infeasible evaluation. The state is a deterministic function
    of the seed and of what was told, so :meth:`replay` rebuilds it from stored trials.
    """

    n_metrics: int

    @abc.abstractmethod
    def ask(self, generation: int) -> np.ndarray:
        """Propose the population ``X [M, dim]`` of generation ``generation`` (from 0)."""

    @abc.abstractmethod
    def tell(self, generation: int, X: np.ndarray, values: np.ndarray) -> None:
        """Ingest one generation: points ``X [M, dim]``, values ``[M, K]`` (maximised)."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Return to the initial state (before generation 0)."""

    def replay(self, history: Iterable[tuple[np.ndarray, np.ndarray]]) -> None:
        """Reset, then ask and tell each completed generation ``(X [M, dim], values [M, K])``
        in order (asking first keeps samplers that draw on ask in step)."""
        self.reset()
        for generation, (X, values) in enumerate(history):
            self.ask(generation)
            self.tell(generation, X, values)


def checked_tell_multi(
    who: str, generation: int, expected: int, dim: int, n_metrics: int, X: np.ndarray,
    values: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The arguments of a :meth:`BaseMultiStrategy.tell`, checked: ``(X [M, dim], Y [M, K])``.

    Raises:
        ValueError: a generation out of order, or shapes that do not fit ``dim`` and ``K``.
    """
    if generation != expected:
        raise ValueError(
            f"told generation {generation} but {who} expects generation "
            f"{expected} next (tell generations in order)"
        )
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(values, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != dim or Y.shape != (X.shape[0], n_metrics):
        raise ValueError(
            f"tell got X {X.shape} and values {Y.shape}; need X [M, {dim}] and "
            f"values [M, {n_metrics}]"
        )
    return X, Y
