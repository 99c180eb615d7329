"""Self-normalized doubly robust under the position-based model."""

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

__all__ = ["SNDR"]


@dataclass(frozen=True)
class SNDR(BaseEstimator):
    """Self-normalized doubly robust (OBP's ``SelfNormalizedDoublyRobust``), PBM form.

    With ``w = e_pi / e_0`` on shown candidates (``[P, R, N]``), ``q`` the reward
    model (``[R, N, T]``) and ``E_pi = mean_r sum_n e_pi`` the target's exposure,

    ``V = 1/R sum_r sum_n e_pi q
    + E_pi * sum_r sum_n w (y - ex[slot] q) / sum_r sum_n w ex[slot]``

    the direct method plus the doubly robust correction normalized by the
    same control variate as :class:`SNIPS` (whose expectation is ``R * E_pi``
    under the position-based model). Consistent (bias ``O(1/R)``) when either
    the IPS assumptions hold or ``q`` is right; invariant to a constant factor
    on all importance weights. With one slot and examination 1 this is
    ``mean(dm) + sum w (y - q) / sum w``.

    Example:
        >>> est = SNDR()
    """

    name: ClassVar[str] = "sndr"
    needs_reward_model: ClassVar[bool] = True

    def terms(self, feedback: SlateFeedback, exposure: np.ndarray) -> RequestTerms:
        self._check(feedback, exposure)
        assert feedback.reward_model is not None
        q = feedback.reward_model
        w = importance_weights(feedback, exposure)
        residual = feedback.rewards - feedback.slot_examination[..., None] * q
        both = expose(w, np.concatenate(
            [residual, feedback.slot_examination[..., None]], axis=2))
        num, den = both[..., :-1], both[..., -1]
        scale = exposure.sum(axis=2, dtype=np.float64).mean(axis=1)
        return RequestTerms(num, den, scale, *weight_moments(w), offset=expose(exposure, q),
                            **feedback_label_moments(w, feedback))
