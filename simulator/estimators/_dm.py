"""Direct method."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from simulator.estimators._base import BaseEstimator, RequestTerms, SlateFeedback, expose

__all__ = ["DirectMethod"]


@dataclass(frozen=True)
class DirectMethod(BaseEstimator):
    """Direct method: trust a reward model.

    ``V_DM = 1/R sum_r sum_n e_pi(r, n) * q(r, n)``, with ``q`` the predicted
    ``E[label | examined]`` of each candidate and ``e_pi`` the target exposure.
    Unbiased only if ``q`` is; low variance. Its ESS is reported as ``R``.

    Example:
        >>> est = DirectMethod()
    """

    name: ClassVar[str] = "dm"
    needs_columns: ClassVar[tuple[str, ...]] = ()
    needs_reward_model: ClassVar[bool] = True

    def terms(self, feedback: SlateFeedback, exposure: np.ndarray) -> RequestTerms:
        self._check(feedback, exposure)
        assert feedback.reward_model is not None
        num = expose(exposure, feedback.reward_model)
        n = float(feedback.n_requests)
        p = exposure.shape[0]
        return RequestTerms(num, None, None, np.full(p, n), np.full(p, n))
