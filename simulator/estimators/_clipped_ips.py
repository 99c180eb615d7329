"""Clipped IPS under the position-based model, as its own estimator."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from simulator.estimators._base import BaseEstimator, RequestTerms, SlateFeedback
from simulator.estimators._ips import IPS

__all__ = ["ClippedIPS"]


@dataclass(frozen=True)
class ClippedIPS(BaseEstimator):
    """PBM-IPS with importance weights cut at ``clip`` (Strehl et al. 2010, Ionides 2008).

    ``V = 1/R sum_r sum_{n shown} y(r, n) * min(e_pi(r, n) / e_0(r, n), clip)``

    with ``e_pi`` ``[P, R, N]`` the target's exposure and ``e_0`` ``[R, N]`` the
    logging policy's (see :class:`IPS`). Equal to :class:`IPS` (hence unbiased
    under its assumptions) when ``clip >= max weight``; otherwise biased
    *downward*, which is why rewards must be ``>= 0``: only then is every
    clipped term at most its unclipped one, so the estimate is a pessimistic
    (lower) one with variance bounded by ``clip^2``. With negative rewards the
    sign of the bias is unknown and the estimate refuses to run.

    Args:
        clip: the weight cap, finite and > 0.

    Example:
        >>> est = ClippedIPS(clip=10.0)
    """

    clip: float = 20.0
    name: ClassVar[str] = "clipped_ips"

    def __post_init__(self) -> None:
        if not (self.clip > 0 and math.isfinite(self.clip)):
            raise ValueError(f"clipped_ips clip must be finite and > 0, got {self.clip} "
                             "(use 'ips' for no clipping)")

    def terms(self, feedback: SlateFeedback, exposure: np.ndarray) -> RequestTerms:
        if (feedback.rewards < 0).any():
            raise ValueError("rewards must be >= 0 for clipped_ips: clipping only bounds "
                             "the bias (downward) for non-negative rewards")
        return IPS(clip=self.clip).terms(feedback, exposure)
