"""Slot-wise doubly robust: the direct method plus a slot-wise IPS correction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from simulator.estimators._base import (
    SHOWN_PSCORE,
    RequestTerms,
    SlateFeedback,
    expose,
    feedback_label_moments,
    weight_moments,
)
from simulator.estimators._slot_ips import SlotIPS, slot_weights

if TYPE_CHECKING:
    from simulator.policies import BasePolicy

__all__ = ["SlotDR"]


@dataclass(frozen=True)
class SlotDR(SlotIPS):
    """Slot-wise doubly robust.

    With ``q`` ``[R, N, T]`` the reward model's ``E[label | examined]``, ``e_pi`` the
    target's exposure over the slots each request shows and ``w = pi(n in slot) /
    pscore`` (:class:`SlotIPS`),

    ``V = 1/R sum_r [ sum_n e_pi q + sum_{n shown} w (y - ex[slot] q) ]``.

    The correction's expectation is ``V_true - sum_n e_pi q`` whenever the weights are
    right (the assumptions of :class:`SlotIPS`), for *any* ``q`` and examination curve:
    unbiased under the item-position model; and if ``ex[k] q`` is the true
    ``E[y | n in slot k]``, the direct method is right and the correction mean-zero.
    Its variance shrinks as ``q`` improves. Needs the shown rows' ``pscore`` and a
    reward model.

    Example:
        >>> est = SlotDR()
    """

    name: ClassVar[str] = "slot_dr"
    needs_reward_model: ClassVar[bool] = True
    needs_columns: ClassVar[tuple[str, ...]] = (SHOWN_PSCORE,)

    def policy_terms(
        self, feedback: SlateFeedback, policy: BasePolicy, fused: np.ndarray
    ) -> RequestTerms:
        self.check_columns(feedback)
        if feedback.positions is None:
            raise ValueError(f"{self.name} needs positions (the logged slots); the feedback "
                             "has none")
        exposure = policy.exposure(fused, feedback.request_examination)
        return self.dr_terms(
            feedback, policy.logged_slot_probabilities(fused, feedback.positions), exposure)

    def dr_terms(self, feedback: SlateFeedback, target_at_slot: np.ndarray,
                 exposure: np.ndarray) -> RequestTerms:
        """Terms from the target's probabilities at the logged slots and its exposure
        (both ``[P, R, N]``)."""
        self._check(feedback, exposure)
        assert feedback.reward_model is not None
        q = feedback.reward_model
        w = slot_weights(feedback, target_at_slot)
        residual = feedback.rewards - feedback.slot_examination[..., None] * q
        num = expose(exposure, q) + expose(w, residual)
        return RequestTerms(num, None, None, *weight_moments(w),
                            **feedback_label_moments(w, feedback))
