"""The result type of every estimator: a value with its interval."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Estimate"]


@dataclass(frozen=True)
class Estimate:
    """A policy-value estimate with a confidence interval.

    Args:
        value: point estimate (per request).
        low: lower end of the interval.
        high: upper end of the interval.
        ess: effective sample size of the importance weights (``n`` for the
            direct method).
        n: number of requests it was estimated on.
        level: confidence level of the interval, e.g. 0.95.
        events: effective number of label events the estimate rests on (the
            Kish ESS of the weighted label contributions, expected under the
            log's label rates, see :meth:`RequestTerms.expected_events`); nan when
            the estimator has no importance weights. Few events: the interval
            may be too narrow.

    Example:
        >>> e = Estimate(1.0, 0.9, 1.1, ess=50.0, n=100, events=42.0)
        >>> e.contains(1.05)
        True
    """

    value: float
    low: float
    high: float
    ess: float
    n: int
    level: float = 0.95
    events: float = math.nan

    def __post_init__(self) -> None:
        if not self.low <= self.high and not (math.isnan(self.low) or math.isnan(self.high)):
            raise ValueError(f"interval low {self.low} exceeds high {self.high}")

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2.0
