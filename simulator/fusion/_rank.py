"""Rank fusion: ``score = sum_k w_k / (c + rank_k)``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from simulator.fusion._base import BaseFusion

__all__ = ["RankFusion"]


@dataclass(frozen=True)
class RankFusion(BaseFusion):
    """Reciprocal-rank fusion: ``score = sum_k w_k / (c + rank_k)``.

    ``rank_k`` is the candidate's 1-based rank by task ``k``'s score within its
    request (ties broken by candidate order). Insensitive to score calibration;
    weights must be ``>= 0``.

    Args:
        c: smoothing constant ``> 0`` (60 in the original RRF paper).

    Example:
        >>> import numpy as np
        >>> f = RankFusion(c=1.0)
        >>> f.transform(np.array([[[0.9], [0.1]]]))[0, :, 0].tolist()
        [0.5, 0.3333333432674408]
    """

    c: float = 60.0
    name: ClassVar[str] = "rank"

    def __post_init__(self) -> None:
        if not self.c > 0:
            raise ValueError(f"rank fusion constant c must be > 0, got {self.c}")

    def transform(self, scores: np.ndarray) -> np.ndarray:
        # rank 1 = highest score, per request and task: [R, N, T]
        order = np.argsort(-scores, axis=1, kind="stable")
        ranks = np.empty_like(order)
        n = scores.shape[1]
        np.put_along_axis(ranks, order, np.arange(1, n + 1)[None, :, None], axis=1)
        return (1.0 / (self.c + ranks)).astype(np.float32)

    def describe(self) -> dict[str, Any]:
        """``{"formula", "score", "c", "rank"}``.

        Example:
            >>> RankFusion().describe()["c"]
            60.0
        """
        return {"formula": self.name, "score": "sum_k w_k / (c + rank_k)", "c": float(self.c),
                "rank": "1-based rank of the candidate by p_k among its request's candidates, "
                        "highest p_k first; equal p_k ranked in candidate order"}
