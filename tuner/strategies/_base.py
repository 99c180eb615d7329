"""The ask/tell interface every search strategy implements."""

from __future__ import annotations

import abc
from collections.abc import Iterable

import numpy as np

from tuner.space import FusionSpace

__all__ = ["BaseStrategy", "checked_tell", "initial_mean"]


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

    pick_label: str = "pick"
    """What :meth:`pick` is, in a few words for tables (``"CEM mean"``, ``"best trial"``)."""

    @property
    @abc.abstractmethod
    def population(self) -> int:
        """Points per generation ``M``: what :meth:`ask` returns and :meth:`tell` takes."""

    def pick(self) -> np.ndarray:
        """The point ``x [dim]`` the strategy recommends exporting now (denoised where it can
        be, e.g. CEM's mean rather than its best noisy trial)."""
        raise NotImplementedError(f"{type(self).__name__} does not recommend a point")

    def spread(self) -> np.ndarray:
        """How widely the next generation is drawn around :meth:`pick`, ``[dim]`` (CEM: its
        sigma); NaN where the strategy has no such notion. Round summaries record it."""
        return np.full(len(self.pick()), np.nan)

    def replay(self, history: Iterable[tuple[np.ndarray, np.ndarray]]) -> None:
        """Reset, then ask and tell each completed generation ``(X [M, dim], values [M])`` in
        order. Asking first keeps strategies that draw on ask (Optuna's samplers) in step, so
        a replayed strategy asks what an uninterrupted one would."""
        self.reset()
        for generation, (X, values) in enumerate(history):
            self.ask(generation)
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


def initial_mean(space: FusionSpace, init_mean: np.ndarray | None) -> np.ndarray:
    """A strategy's starting point ``[dim]``: ``init_mean`` given as ``[dim]`` or as full
    weights ``[T]`` (rescaled so the pinned weight is 1), default the centre of the box.

    Raises:
        ValueError: the point lies outside the box.
    """
    if init_mean is None:
        return np.full(space.dim, (space.low + space.high) / 2.0)
    mean = space.from_weights(np.asarray(init_mean, dtype=np.float64))
    if not space.contains(mean):
        raise ValueError(
            f"init_mean {mean.tolist()} (free tasks {list(space.free_tasks)}) lies "
            f"outside the box [{space.low}, {space.high}]"
        )
    return mean
