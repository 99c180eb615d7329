"""SWITCH: IPS where the importance weight is small, the direct method elsewhere."""

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
    logging_exposure,
    weight_moments,
)

__all__ = ["Switch", "candidate_weights"]


def candidate_weights(feedback: SlateFeedback, exposure: np.ndarray) -> np.ndarray:
    """``[P, R, N]`` ``e_pi / e_0`` for *every* candidate, shown or not.

    ``inf`` where the logging exposure is 0 and the target's is not (such
    candidates can never be corrected by IPS), 0 where both are 0.
    """
    e0 = logging_exposure(feedback)[None].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(e0 > 0, exposure / np.where(e0 > 0, e0, 1.0),
                     np.where(exposure > 0, np.inf, 0.0))
    return w


def check_tau(name: str, tau: float) -> None:
    if not tau > 0:  # also refuses nan
        raise ValueError(f"{name} tau must be > 0, got {tau}")


@dataclass(frozen=True)
class Switch(BaseEstimator):
    """SWITCH estimator (Wang, Agarwal and Dudik 2017) under the position-based model.

    With ``w(r, n) = e_pi(r, n) / e_0(r, n)`` for every candidate (``[P, R, N]``),

    ``V = 1/R sum_r [ sum_{n shown, w <= tau} w * y
    + sum_{n: w > tau} e_pi(r, n) * q(r, n) ]``

    i.e. PBM-IPS on the candidates whose weight is at most ``tau`` and the
    direct method on the others. ``tau = inf`` is :class:`IPS` exactly;
    ``tau -> 0`` is the direct method. Unbiased when the IPS assumptions hold
    and the reward model ``q`` (``[R, N, T]``, ``E[label | examined]``) is right
    on the candidates with ``w > tau``.

    Args:
        tau: the weight threshold, > 0 (``inf`` allowed).

    Example:
        >>> est = Switch(tau=5.0)
    """

    tau: float = 10.0
    name: ClassVar[str] = "switch"
    needs_reward_model: ClassVar[bool] = True

    def __post_init__(self) -> None:
        check_tau(self.name, self.tau)

    def terms(self, feedback: SlateFeedback, exposure: np.ndarray) -> RequestTerms:
        self._check(feedback, exposure)
        assert feedback.reward_model is not None
        w_all = candidate_weights(feedback, exposure)
        keep = w_all <= self.tau
        w = np.where(keep & feedback.shown[None], w_all, 0.0).astype(np.float32)
        dm_exposure = np.where(keep, 0.0, exposure).astype(np.float32)
        num = expose(w, feedback.rewards) + expose(dm_exposure, feedback.reward_model)
        return RequestTerms(num, None, None, *weight_moments(w),
                            **feedback_label_moments(w, feedback))
