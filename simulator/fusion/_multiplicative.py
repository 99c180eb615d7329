"""Multiplicative fusion: ``score = prod_k p_k ** w_k``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from simulator.fusion._base import BaseFusion

__all__ = ["MultiplicativeFusion"]

_EPS = 1e-7


@dataclass(frozen=True)
class MultiplicativeFusion(BaseFusion):
    """``score = prod_k p_k ** w_k``, ranked as ``sum_k w_k log p_k`` (same order).

    Scores must be probabilities in ``(0, 1]``; they are clipped at ``1e-7``.
    Weights must be ``>= 0``: a negative exponent would prefer *low* predicted
    probability, which is never what a positive task means.

    Example:
        >>> import numpy as np
        >>> f = MultiplicativeFusion()
        >>> x = f.transform(np.array([[[0.5, 0.1], [0.2, 0.9]]]))
        >>> f.fuse(x, np.array([[1.0, 1.0]])).shape
        (1, 1, 2)
    """

    name: ClassVar[str] = "multiplicative"

    def transform(self, scores: np.ndarray) -> np.ndarray:
        return np.log(np.clip(scores, _EPS, None)).astype(np.float32)

    def describe(self) -> dict[str, Any]:
        """``{"formula", "score", "same_order_as", "transform", "clip_low", "clip_high"}``.

        Example:
            >>> MultiplicativeFusion().describe()["clip_low"]
            1e-07
        """
        return {"formula": self.name, "score": "sum_k w_k * log(max(p_k, clip_low))",
                "same_order_as": "prod_k max(p_k, clip_low) ** w_k", "transform": "log",
                "clip_low": _EPS, "clip_high": None}
