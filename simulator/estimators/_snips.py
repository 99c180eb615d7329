"""Self-normalized IPS under the position-based model."""

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

__all__ = ["SNIPS"]


@dataclass(frozen=True)
class SNIPS(BaseEstimator):
    """Self-normalized PBM-IPS.

    With weights ``w(r, n) = e_pi(r, n) / e_0(r, n)`` on shown candidates,

    ``V_SNIPS = E_pi * sum_r sum_n w y / sum_r sum_n w * examination[slot(r, n)]``

    where ``E_pi = mean_r sum_n e_pi(r, n)`` is the target's total exposure per
    request. Under the position-based model the denominator's expectation is
    ``R * E_pi``, so this is IPS divided by a control variate with known mean:
    consistent (bias ``O(1/R)``) under the assumptions of :class:`IPS`, and
    usually of much lower variance.

    Example:
        >>> est = SNIPS()
    """

    name: ClassVar[str] = "snips"

    def terms(self, feedback: SlateFeedback, exposure: np.ndarray) -> RequestTerms:
        self._check(feedback, exposure)
        w = importance_weights(feedback, exposure)
        both = expose(w, np.concatenate(
            [feedback.rewards, feedback.slot_examination[..., None]], axis=2))
        num, den = both[..., :-1], both[..., -1]
        scale = exposure.sum(axis=2, dtype=np.float64).mean(axis=1)
        return RequestTerms(num, den, scale, *weight_moments(w),
                            **feedback_label_moments(w, feedback))
