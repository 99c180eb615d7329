"""Reward-interaction IPS: slate-prefix importance weights for cascading users."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from simulator.estimators._base import (
    PREFIX_PSCORE,
    BaseEstimator,
    RequestTerms,
    SlateFeedback,
    expose,
    feedback_label_moments,
    weight_moments,
)

if TYPE_CHECKING:
    from simulator.policies import BasePolicy

__all__ = ["RIPS"]


@dataclass(frozen=True)
class RIPS(BaseEstimator):
    """Reward-interaction IPS (McInerney et al. 2020; OBP's ``SlateRewardInteractionIPS``).

    The label in slot ``k`` is weighted by the target/logging probability ratio
    of the logged slate's *prefix* ``s_0..s_k``:

    ``V = 1/R sum_r sum_{n shown} y(r, n) * pi(prefix(r, n)) / mu(prefix(r, n))``

    with ``pi(prefix)`` ``[P, R, N]`` from the target policy
    (:meth:`BasePolicy.prefix_probabilities`) and ``mu(prefix)`` ``[R, N]`` the
    log's ``prefix_pscore`` column. Unbiased when (a) the label in slot ``k``
    depends only on the user and the items in slots ``0..k`` (cascades, where a
    click above stops examination, and the position-based model are special
    cases), (b) ``mu(prefix) > 0`` wherever ``pi(prefix) > 0`` (an
    epsilon-greedy logger with ``epsilon > 0`` guarantees it) and (c) the
    logged ``prefix_pscore`` is exact. Biased when an item's label depends on
    items shown *below* it. Variance grows with depth: the weight of slot
    ``k`` is a product of ``k + 1`` ratios.

    The estimator needs more than exposure, so :meth:`terms` refuses; the
    replay calls :meth:`policy_terms`.

    Example:
        >>> est = RIPS()
    """

    name: ClassVar[str] = "rips"
    needs_columns: ClassVar[tuple[str, ...]] = (PREFIX_PSCORE,)

    def terms(self, feedback: SlateFeedback, exposure: np.ndarray) -> RequestTerms:
        raise ValueError("rips needs the target policy's prefix probabilities, not only its "
                         "exposure: call policy_terms(feedback, policy, fused) or "
                         "prefix_terms(feedback, target_prefix)")

    def policy_terms(
        self, feedback: SlateFeedback, policy: BasePolicy, fused: np.ndarray
    ) -> RequestTerms:
        if feedback.positions is None:
            raise ValueError("rips needs positions (the logged slates); the feedback has none")
        seen = feedback.slot_shown
        if seen is not None and (seen[:, 1:] & ~seen[:, :-1]).any():
            r = int(np.flatnonzero((seen[:, 1:] & ~seen[:, :-1]).any(axis=1))[0])
            raise ValueError(f"rips needs each request's shown slots to be its first ones (a "
                             f"prefix); request index {r} shows slots "
                             f"{np.flatnonzero(seen[r]).tolist()}: its logged prefix is unknown")
        return self.prefix_terms(feedback, policy.prefix_probabilities(fused, feedback.positions))

    def prefix_terms(self, feedback: SlateFeedback, target_prefix: np.ndarray) -> RequestTerms:
        """Terms from the target's prefix probabilities ``[P, R, N]`` (0 where not shown)."""
        if feedback.prefix_pscore is None:
            raise ValueError("rips needs prefix_pscore (the logging probability of each logged "
                             "slate prefix); the log carries none: write the log's "
                             "prefix_pscore column, e.g. with "
                             "EpsilonGreedyTopK.prefix_probabilities")
        if target_prefix.ndim != 3 or target_prefix.shape[1:] != feedback.shown.shape:
            raise ValueError(f"target_prefix must have shape [P, R, N] with [R, N] = "
                             f"{feedback.shown.shape}, got {target_prefix.shape}")
        if not ((target_prefix >= 0) & (target_prefix <= 1 + 1e-9)).all():
            raise ValueError("target_prefix must be probabilities in [0, 1]")
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = np.where(feedback.shown, 1.0 / feedback.prefix_pscore, 0.0)
        w = (target_prefix * inv[None]).astype(np.float32)
        return RequestTerms(expose(w, feedback.rewards), None, None, *weight_moments(w),
                            **feedback_label_moments(w, feedback))
