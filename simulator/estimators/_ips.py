"""Inverse propensity scoring under the position-based model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from simulator.estimators._base import (
    BaseEstimator,
    RequestTerms,
    SlateFeedback,
    expose,
    feedback_label_moments,
    importance_weights,
    weight_moments,
)

__all__ = ["IPS"]


@dataclass(frozen=True)
class IPS(BaseEstimator):
    """IPS for slates under the position-based model (PBM-IPS, Li et al. 2018).

    ``V_IPS = 1/R sum_r sum_{n shown} y(r, n) * e_pi(r, n) / e_0(r, n)``, where
    ``e(n) = sum_k examination[k] * P(n in slot k)`` is a policy's exposure of a
    candidate, ``e_pi`` the target's and ``e_0`` the logging policy's.

    Unbiased when (a) labels follow the position-based model,
    ``P(y = 1 | n in slot k) = examination[k] * r(n)``, with the true examination
    curve, and (b) ``e_0 > 0`` wherever ``e_pi > 0``. Biased when the label of an
    item depends on the other items of the slate (e.g. a cascade).

    Args:
        clip: importance weights above ``clip`` are cut to it (clipped IPS;
            ``inf`` = plain IPS). Clipping trades bias for variance.

    Example:
        >>> est = IPS(clip=100.0)
    """

    clip: float = float("inf")
    name: ClassVar[str] = "ips"

    def __post_init__(self) -> None:
        if not self.clip > 0:
            raise ValueError(f"IPS clip must be > 0, got {self.clip}")

    def terms(self, feedback: SlateFeedback, exposure: np.ndarray) -> RequestTerms:
        self._check(feedback, exposure)
        w = importance_weights(feedback, exposure)
        if np.isfinite(self.clip):
            w = np.minimum(w, self.clip)
        num = expose(w, feedback.rewards)
        return RequestTerms(num, None, None, *weight_moments(w),
                            **feedback_label_moments(w, feedback))
