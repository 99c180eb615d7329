"""Business guardrails: a metric must not fall more than ``d`` below control.

A guardrail is judged at the lower end of the 95% interval of the *paired*
lift (treatment minus control on the same resampled requests): a weight
vector is infeasible when that lower end is below ``-d * control``. An
infeasible trial is recorded with its reason, never becomes a CEM elite, and
is never reported or exported as best.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from simulator.estimators import RequestTerms
from simulator.intervals import BaseInterval, point_values
from tuner.weights_text import Numbers, check_task_numbers, parse_task_numbers

__all__ = ["Guardrail", "guardrail_reasons", "parse_guardrails"]


@dataclass(frozen=True)
class Guardrail:
    """``metric`` may fall at most ``max_drop`` (a fraction of control) below control.

    Example:
        >>> Guardrail("click", 0.05).max_drop
        0.05
    """

    metric: str
    max_drop: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_drop < 1.0:
            raise ValueError(f"guardrail {self.metric!r}: max drop must be a fraction in "
                             f"[0, 1), e.g. 0.05 for 5%; got {self.max_drop}")


def parse_guardrails(spec: Mapping[str, float] | str | None,
                     tasks: Sequence[str] | None = None,
                     what: str = "--guardrail") -> tuple[Guardrail, ...]:
    """Guardrails from ``{"click": 0.05}`` or ``"click=0.05,like=2%"``.

    Args:
        spec: the guardrails as a table or as text (None or empty: none).
        tasks: the valid metric names (None: any).
        what: the option or setting named in messages.

    Raises:
        ValueError: malformed terms, a metric given twice, an unknown metric (naming the
            valid ones) or a drop outside [0, 1).
    """
    if not spec:
        return ()
    if isinstance(spec, str):
        items = parse_task_numbers(spec, what, names=tasks, numbers=Numbers(percent=True),
                                   kind="metric", value="max drop",
                                   example="click=0.05 or click=5%")
    else:
        items = check_task_numbers(spec, what, names=tasks, kind="metric")
    return tuple(Guardrail(m, d) for m, d in items.items())


def guardrail_reasons(terms: RequestTerms, interval: BaseInterval, tasks: Sequence[str],
                      guardrails: Sequence[Guardrail], keys: np.ndarray | None = None
                      ) -> list[str]:
    """Why each treatment breaks a guardrail (``""`` when feasible).

    Args:
        terms: request terms of ``1 + P`` policies, the control first.
        interval: how the paired lift interval is computed.
        tasks: task order of the terms.
        guardrails: the guardrails.
        keys: ``[R]`` the requests' ids (the bootstrap's keys; None: ``0..R-1``).

    Returns:
        ``P`` reasons, one per treatment.
    """
    n_treat = terms.numerator.shape[0] - 1
    if not guardrails:
        return [""] * n_treat
    combine = np.eye(len(tasks))
    control = point_values(terms, combine)[0]  # [T]
    contrast = np.concatenate([-np.ones((n_treat, 1)), np.eye(n_treat)], axis=1)
    lift_low, _ = interval.bounds(terms, combine, contrast, keys)  # [P, T]
    return reasons_from(control, lift_low, tasks, guardrails)


def reasons_from(control: np.ndarray, lift_low: np.ndarray, tasks: Sequence[str],
                 guardrails: Sequence[Guardrail]) -> list[str]:
    """Why each treatment breaks a guardrail, from the control's values ``[T]`` and the
    lower ends of the treatments' paired lifts ``[P, T]`` (a streamed replay has these sums
    and no per-request terms)."""
    n_treat = lift_low.shape[0]
    reasons = []
    for p in range(n_treat):
        broken = []
        for g in guardrails:
            t = tasks.index(g.metric)
            limit = -g.max_drop * control[t]
            if lift_low[p, t] < limit:
                rel = lift_low[p, t] / control[t] if control[t] else float("-inf")
                broken.append(f"{g.metric}: lift lower bound {rel:+.2%} of control is below "
                              f"the guardrail -{g.max_drop:.2%}")
        reasons.append("; ".join(broken))
    return reasons
