"""Self-normalized slot-wise IPS."""

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

__all__ = ["SlotSNIPS"]


@dataclass(frozen=True)
class SlotSNIPS(SlotIPS):
    """Self-normalized slot-wise IPS (OBP's ``SelfNormalizedSlateIndependentIPS``).

    With the weights ``w = pi(n in slot) / pscore`` of :class:`SlotIPS` on shown rows,

    ``V = F_pi * sum_r sum_n w y / sum_r sum_n w``

    where ``F_pi = mean_r #{slots k the request shows and the target fills}`` (a
    policy of slate size ``k`` fills slot ``j < min(k, N_r)``). The denominator is a
    control variate of known mean: under (b) of :class:`SlotIPS`, ``E[sum_n w] =
    sum_{k shown} sum_n pi(n in k)``, the request's ``F``. So it is consistent (bias
    ``O(1/R)``) under the assumptions of :class:`SlotIPS`, of lower variance, and
    invariant to a constant factor on the propensities. OBP divides by the mean weight
    over impressions, which is the same when the target fills every shown slot.

    Example:
        >>> est = SlotSNIPS()
    """

    name: ClassVar[str] = "slot_snips"
    needs_columns: ClassVar[tuple[str, ...]] = (SHOWN_PSCORE,)

    def policy_terms(
        self, feedback: SlateFeedback, policy: BasePolicy, fused: np.ndarray
    ) -> RequestTerms:
        self.check_columns(feedback)
        if feedback.positions is None:
            raise ValueError(f"{self.name} needs positions (the logged slots); the feedback "
                             "has none")
        counts = (fused > -np.inf).sum(axis=-1)  # [P, R] candidates
        filled = (feedback.positions[None] >= 0) & (
            feedback.positions[None] < np.minimum(policy.k, counts)[..., None])
        scale = filled.sum(axis=2, dtype=np.float64).mean(axis=1)  # [P]
        return self.normalized_terms(
            feedback, policy.logged_slot_probabilities(fused, feedback.positions), scale)

    def normalized_terms(self, feedback: SlateFeedback, target_at_slot: np.ndarray,
                         scale: np.ndarray) -> RequestTerms:
        """Terms from the target's probabilities at the logged slots ``[P, R, N]`` and
        ``scale`` ``[P]``, the mean number of shown slots the target fills."""
        w = slot_weights(feedback, target_at_slot)
        both = expose(w, np.concatenate(
            [feedback.rewards, feedback.shown[..., None].astype(np.float32)], axis=2))
        num, den = both[..., :-1], both[..., -1]
        return RequestTerms(num, den, np.asarray(scale, dtype=np.float64), *weight_moments(w),
                            **feedback_label_moments(w, feedback))
