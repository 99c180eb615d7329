"""Doubly robust estimator under the position-based model."""

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

__all__ = ["DoublyRobust"]


@dataclass(frozen=True)
class DoublyRobust(BaseEstimator):
    """Doubly robust: the direct method plus an IPS correction of its residuals.

    ``V_DR = 1/R sum_r [ sum_n e_pi q + sum_{n shown} (e_pi / e_0) (y - ex[slot] q) ]``

    with ``q`` the reward model's ``E[label | examined]``. Unbiased if either the
    propensities (under the position-based model) or the reward model are right;
    its variance shrinks as ``q`` improves.

    Example:
        >>> est = DoublyRobust()
    """

    name: ClassVar[str] = "dr"
    needs_reward_model: ClassVar[bool] = True

    def terms(self, feedback: SlateFeedback, exposure: np.ndarray) -> RequestTerms:
        self._check(feedback, exposure)
        assert feedback.reward_model is not None
        w = importance_weights(feedback, exposure)
        q = feedback.reward_model
        residual = feedback.rewards - feedback.slot_examination[..., None] * q
        num = expose(exposure, q) + expose(w, residual)
        return RequestTerms(num, None, None, *weight_moments(w),
                            **feedback_label_moments(w, feedback))
