"""Switch doubly robust: the DR correction only where the importance weight is small."""

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
    weight_moments,
)
from simulator.estimators._switch import candidate_weights, check_tau

__all__ = ["SwitchDR"]


@dataclass(frozen=True)
class SwitchDR(BaseEstimator):
    """SWITCH-DR (Wang, Agarwal and Dudik 2017; OBP's ``SwitchDoublyRobust``), PBM form.

    With ``w = e_pi / e_0`` (``[P, R, N]``) and ``q`` the reward model (``[R, N, T]``),

    ``V = 1/R sum_r [ sum_n e_pi q + sum_{n shown, w <= tau} w (y - ex[slot] q) ]``

    the direct method everywhere plus the doubly robust correction on the
    candidates whose weight is at most ``tau``. ``tau = inf`` is
    :class:`DoublyRobust`; ``tau -> 0`` is the direct method. Unbiased when
    ``q`` is right on the candidates with ``w > tau`` and the IPS assumptions
    hold (or ``q`` is right everywhere).

    Args:
        tau: the weight threshold, > 0 (``inf`` allowed).

    Example:
        >>> est = SwitchDR(tau=5.0)
    """

    tau: float = 10.0
    name: ClassVar[str] = "switch_dr"
    needs_reward_model: ClassVar[bool] = True

    def __post_init__(self) -> None:
        check_tau(self.name, self.tau)

    def terms(self, feedback: SlateFeedback, exposure: np.ndarray) -> RequestTerms:
        self._check(feedback, exposure)
        assert feedback.reward_model is not None
        q = feedback.reward_model
        w_all = candidate_weights(feedback, exposure)
        w = np.where((w_all <= self.tau) & feedback.shown[None], w_all, 0.0).astype(np.float32)
        residual = feedback.rewards - feedback.slot_examination[..., None] * q
        num = expose(exposure, q) + expose(w, residual)
        return RequestTerms(num, None, None, *weight_moments(w),
                            **feedback_label_moments(w, feedback))
