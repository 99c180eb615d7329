"""Slot-wise (item-position) IPS: what a log with only the shown rows' propensities allows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from simulator.estimators._base import (
    SHOWN_PSCORE,
    BaseEstimator,
    RequestTerms,
    SlateFeedback,
    expose,
    feedback_label_moments,
    weight_moments,
)

if TYPE_CHECKING:
    from simulator.policies import BasePolicy

__all__ = ["SlotIPS", "slot_weights"]


def slot_weights(feedback: SlateFeedback, target_at_slot: np.ndarray) -> np.ndarray:
    """``[P, R, N]`` float32 ``pi(n in its logged slot) / pscore(n)`` on shown rows, else 0.

    Args:
        feedback: the log; ``logged_pscore`` is each shown row's logging propensity.
        target_at_slot: ``[P, R, N]`` the target's probability of putting each shown
            candidate in the slot it was logged in
            (:meth:`~simulator.policies.BasePolicy.logged_slot_probabilities`).

    Raises:
        ValueError: a target array of the wrong shape or outside [0, 1].
    """
    if target_at_slot.ndim != 3 or target_at_slot.shape[1:] != feedback.shown.shape:
        raise ValueError(f"target_at_slot must have shape [P, R, N] with [R, N] = "
                         f"{feedback.shown.shape}, got {target_at_slot.shape}")
    if not ((target_at_slot >= 0) & (target_at_slot <= 1 + 1e-9)).all():
        raise ValueError("target_at_slot must be probabilities in [0, 1]")
    assert feedback.logged_pscore is not None
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(feedback.shown, 1.0 / feedback.logged_pscore, 0.0)
    return (target_at_slot * inv[None]).astype(np.float32)


@dataclass(frozen=True)
class SlotIPS(BaseEstimator):
    """Slot-wise IPS (Li et al. 2018's item-position IPS; OBP's ``SlateIndependentIPS``).

    Each shown impression's label is weighted by the target's probability of the
    logged item *at its logged slot* over the logged propensity of that impression:

    ``V = 1/R sum_r sum_{n shown} y(r, n) * pi(n in slot(r, n)) / pscore(r, n)``

    with ``pi(n in k)`` ``[P, R, N]`` from the target policy and ``pscore`` the log's
    ``pscore`` column (or ``pscore_<slot>``). Needs nothing else of the log: no
    other candidate's propensities, no examination curve.

    Unbiased when (a) the item-position model holds, ``E[y | n in slot k, slate] =
    phi(n, k)`` (the label of a slot depends on its item and its slot, not on the
    rest of the slate; the position-based model ``examination[k] * r(n)`` is one
    case, a cascade is not), (b) ``pscore > 0`` wherever ``pi > 0`` (an
    epsilon-greedy logger guarantees it) and (c) the target is valued on the slots
    each request shows. More variance than the PBM-IPS (``ips``), which pools a
    candidate's weight over slots with the examination curve: here a deterministic
    target gives each impression weight 0 or ``1 / pscore``.

    The replay calls :meth:`policy_terms`; :meth:`terms` (exposure only) refuses.

    Example:
        >>> est = SlotIPS()
    """

    name: ClassVar[str] = "slot_ips"
    needs_columns: ClassVar[tuple[str, ...]] = (SHOWN_PSCORE,)

    def terms(self, feedback: SlateFeedback, exposure: np.ndarray) -> RequestTerms:
        raise ValueError(f"{self.name} needs the target's probability of each logged item at "
                         "its logged slot, not only its exposure: call policy_terms(feedback, "
                         "policy, fused) or slot_terms(feedback, target_at_slot)")

    def policy_terms(
        self, feedback: SlateFeedback, policy: BasePolicy, fused: np.ndarray
    ) -> RequestTerms:
        self.check_columns(feedback)
        if feedback.positions is None:
            raise ValueError(f"{self.name} needs positions (the logged slots); the feedback "
                             "has none")
        return self.slot_terms(feedback, policy.logged_slot_probabilities(
            fused, feedback.positions))

    def slot_terms(self, feedback: SlateFeedback, target_at_slot: np.ndarray) -> RequestTerms:
        """Terms from the target's probabilities at the logged slots ``[P, R, N]``."""
        self.check_columns(feedback)
        w = slot_weights(feedback, target_at_slot)
        return RequestTerms(expose(w, feedback.rewards), None, None, *weight_moments(w),
                            **feedback_label_moments(w, feedback))
