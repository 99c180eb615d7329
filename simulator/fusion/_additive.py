"""Additive fusion over a monotone transform: ``score = sum_k w_k F(p_k)``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from simulator.fusion._base import BaseFusion

__all__ = ["AdditiveFusion"]

_EPS = 1e-7
_TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "log": lambda p: np.log(np.clip(p, _EPS, None)),
    "identity": lambda p: p,
    "logit": lambda p: np.log(np.clip(p, _EPS, 1 - _EPS)) - np.log1p(-np.clip(p, _EPS, 1 - _EPS)),
    "sqrt": lambda p: np.sqrt(np.clip(p, 0, None)),
}


@dataclass(frozen=True)
class AdditiveFusion(BaseFusion):
    """``score = sum_k w_k F(p_k)`` for a monotone ``F``.

    Args:
        transform_name: ``"log"`` (default; same ranking as the multiplicative
            formula), ``"identity"``, ``"logit"`` or ``"sqrt"``.

    Negative weights are allowed (a task to avoid, e.g. p(hate)).

    Example:
        >>> import numpy as np
        >>> f = AdditiveFusion("identity")
        >>> float(f.fuse(f.transform(np.ones((1, 2, 2))), np.array([[1.0, -0.5]]))[0, 0, 0])
        0.5
    """

    transform_name: str = "log"
    name: ClassVar[str] = "additive"
    allows_negative: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if self.transform_name not in _TRANSFORMS:
            raise ValueError(
                f"unknown additive transform {self.transform_name!r}; "
                f"valid: {sorted(_TRANSFORMS)}"
            )

    def transform(self, scores: np.ndarray) -> np.ndarray:
        return _TRANSFORMS[self.transform_name](scores).astype(np.float32)
