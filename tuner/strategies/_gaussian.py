"""What the strategies that carry one diagonal Gaussian of their own share.

:class:`~tuner.strategies.SteadyCEM` and :class:`~tuner.strategies.SmoothCEM` differ in
how they choose elites and refit; both start from the same Gaussian, draw a generation
the same way (seeded by ``(seed, generation)``) and recommend its mean.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from tuner.space import FusionSpace
from tuner.strategies._base import BaseStrategy, initial_mean

__all__ = ["GaussianStrategy"]


class GaussianStrategy(BaseStrategy):
    """A strategy over a diagonal Gaussian ``N(mean, sigma^2)`` in the search space.

    Args:
        space: the search space.
        config: hyperparameters (``population``, ``init_sigma`` and the subclass's own);
            default ``config_class()``.
        seed: seed of every generation's sampling.
        init_mean: initial mean, ``[dim]`` or full weights ``[T]``; default the box centre.
    """

    config_class: ClassVar[type[Any]]
    config: Any

    def __init__(self, space: FusionSpace, config: Any | None = None, seed: int = 0,
                 init_mean: np.ndarray | None = None) -> None:
        self.space = space
        self.config = config if config is not None else self.config_class()
        self.seed = int(seed)
        self._init_mean = initial_mean(space, init_mean)
        self.reset()

    @property
    def population(self) -> int:
        return int(self.config.population)

    @property
    def generation(self) -> int:
        """Generations told so far."""
        return self._generation

    @property
    def init_mean(self) -> np.ndarray:
        """The initial mean ``[dim]``."""
        return self._init_mean.copy()

    def reset(self) -> None:
        """Back to the initial Gaussian (``init_sigma`` of the box's width), nothing told."""
        width = self.space.high - self.space.low
        self._generation = 0
        self._mean = self._init_mean.copy()
        self._sigma = np.full(self.space.dim, self.config.init_sigma * width)

    def pick(self) -> np.ndarray:
        """The recommended vector ``[dim]``: the Gaussian's mean."""
        return self._mean.copy()

    def spread(self) -> np.ndarray:
        """The current sigma ``[dim]``."""
        return self._sigma.copy()

    def _draw(self, generation: int, m: int) -> np.ndarray:
        """``[m, dim]`` draws of generation ``generation``, clipped to the box."""
        if generation < 0:
            raise ValueError(f"generation is {generation}; need >= 0")
        rng = np.random.default_rng([self.seed, int(generation)])
        z = rng.standard_normal((m, self.space.dim))
        return self.space.clip(self._mean + self._sigma * z)
