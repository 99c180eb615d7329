"""Additive fusion over a monotone transform: ``score = sum_k w_k F(p_k)``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from simulator.fusion._base import BaseFusion

__all__ = ["AdditiveFusion"]

_EPS = 1e-7


@dataclass(frozen=True)
class _Transform:
    """``F(p) = f(clip(p, low, high))``; ``text`` is ``F`` for another language's scorer."""

    f: Callable[[np.ndarray], np.ndarray]
    text: str
    low: float | None = None
    high: float | None = None

    def __call__(self, p: np.ndarray) -> np.ndarray:
        if self.low is not None or self.high is not None:
            p = np.clip(p, self.low, self.high)
        return self.f(p)


_TRANSFORMS: dict[str, _Transform] = {
    "log": _Transform(np.log, "log(q), q = max(p, clip_low)", _EPS),
    "identity": _Transform(lambda p: p, "p"),
    "logit": _Transform(lambda q: np.log(q) - np.log1p(-q),
                        "log(q) - log(1 - q), q = min(max(p, clip_low), clip_high)",
                        _EPS, 1 - _EPS),
    "sqrt": _Transform(np.sqrt, "sqrt(q), q = max(p, clip_low)", 0.0),
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

    def describe(self) -> dict[str, Any]:
        """``{"formula", "score", "transform", "transform_formula", "clip_low", "clip_high"}``.

        Example:
            >>> AdditiveFusion("logit").describe()["clip_high"]
            0.9999999
        """
        t = _TRANSFORMS[self.transform_name]
        return {"formula": self.name, "score": "sum_k w_k * F(p_k)",
                "transform": self.transform_name, "transform_formula": t.text,
                "clip_low": t.low, "clip_high": t.high}
