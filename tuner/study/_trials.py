"""A study's trials as CEM members: freezing them and reading them back (the loop writes
them, :func:`tuner.study._loop._add_trials`; this module imports no writer, so that reading
a study imports none).

Every member is an Optuna trial tagged with user attrs ``round`` and ``member``; a non-finite
value makes it a FAIL trial with a ``fail_reason``, and a guardrail breach is user attr
``infeasible``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState, create_trial

from tuner.space import FusionSpace

__all__ = [
    "FAIL_REASON",
    "INFEASIBLE",
    "REASON_INTERRUPTED",
    "REASON_NONFINITE",
    "TrialResult",
    "build_trial",
    "is_feasible_complete",
]

FAIL_REASON = "fail_reason"
REASON_NONFINITE = "non-finite objective value"
INFEASIBLE = "infeasible"
REASON_INTERRUPTED = "left RUNNING by an interrupted run; marked FAIL on resume"


class _EstimateLike(Protocol):
    @property
    def value(self) -> float: ...
    @property
    def low(self) -> float: ...
    @property
    def high(self) -> float: ...
    @property
    def ess(self) -> float: ...
    @property
    def events(self) -> float: ...


@dataclass(frozen=True)
class TrialResult:
    """What ``evaluate`` returns for one weight vector.

    Args:
        value: objective value (maximised); non-finite values make the trial FAIL.
        low: lower end of its confidence interval.
        high: upper end of its confidence interval.
        ess: effective sample size of the estimate.
        metrics: per-task estimates, stored as trial user attrs ``metric:<task>``.
        infeasible: why the weight vector breaks a guardrail (``""``: feasible);
            stored as user attr ``infeasible``. Infeasible trials never become CEM
            elites and are never reported as a round's best.
        attrs: further JSON-able user attrs of the trial, stored as given (e.g. a
            loss-weight trial's ``auc:<task>`` and ``fusion:<task>``); they must be
            deterministic functions of the weight vector, or resume changes the trials.
        events: effective number of label events the objective's estimate rests on
            (nan: unknown); stored as user attr ``events`` (``None`` when nan).
    """

    value: float
    low: float
    high: float
    ess: float
    metrics: Mapping[str, float] = field(default_factory=dict)
    infeasible: str = ""
    attrs: Mapping[str, Any] = field(default_factory=dict)
    events: float = math.nan

    @classmethod
    def from_estimate(
        cls, estimate: _EstimateLike, metrics: Mapping[str, float] | None = None
    ) -> TrialResult:
        """Build from anything with ``value, low, high, ess, events`` (a simulator Estimate)."""
        return cls(
            float(estimate.value),
            float(estimate.low),
            float(estimate.high),
            float(estimate.ess),
            dict(metrics or {}),
            events=float(estimate.events),
        )


def _fail_running(study: optuna.Study) -> None:
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        # Optuna has no public way to set a trial's user attr by number; Trial(study, id)
        # is the handle ask() would have returned.
        optuna.Trial(study, t._trial_id).set_user_attr(FAIL_REASON, REASON_INTERRUPTED)
        study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)


def _members(study: optuna.Study) -> list[FrozenTrial]:
    """Finished trials that hold a CEM member: COMPLETE, or FAIL for a non-finite value."""
    return _select_members(
        study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL))
    )


def _select_members(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The trials of ``trials`` (by number) that hold a CEM member."""
    out = []
    for t in sorted(trials, key=lambda t: t.number):
        if t.state not in (TrialState.COMPLETE, TrialState.FAIL):
            continue
        ua = t.user_attrs
        if "round" not in ua or "member" not in ua:
            continue
        if t.state == TrialState.FAIL and not str(ua.get(FAIL_REASON, "")).startswith(
            REASON_NONFINITE
        ):
            continue
        out.append(t)
    return out


def _round_members(study: optuna.Study, g: int, population: int) -> list[FrozenTrial]:
    """The ``population`` members of round ``g``, by member index."""
    got: dict[int, FrozenTrial] = {}
    for t in _members(study):
        if t.user_attrs["round"] == g:
            got.setdefault(t.user_attrs["member"], t)
    if sorted(got) != list(range(population)):
        raise RuntimeError(
            f"round {g} of study {study.study_name!r} has members {sorted(got)} after "
            f"evaluation, not 0..{population - 1}; is another process driving it?"
        )
    return [got[m] for m in range(population)]


def _generations(
    members: Sequence[FrozenTrial], population: int
) -> list[tuple[int, list[FrozenTrial], bool]]:
    """``(round, members by member index, complete)`` for rounds 0, 1, ... up to the first
    incomplete one (included if it has any member)."""
    by_round: dict[int, dict[int, FrozenTrial]] = {}
    for t in members:  # by number: a duplicate (round, member) keeps the first
        by_round.setdefault(t.user_attrs["round"], {}).setdefault(t.user_attrs["member"], t)
    out = []
    g = 0
    while g in by_round:
        got = by_round[g]
        complete = all(m in got for m in range(population))
        out.append((g, [got[m] for m in sorted(got)], complete))
        if not complete:
            break
        g += 1
    return out


def is_feasible_complete(t: FrozenTrial) -> bool:
    """A COMPLETE trial with a value that breaks no guardrail."""
    return (t.state == TrialState.COMPLETE and t.values is not None
            and not t.user_attrs.get(INFEASIBLE))


def _arrays(space: FusionSpace, members: Sequence[FrozenTrial]) -> tuple[np.ndarray, np.ndarray]:
    """Stored ``X [M, dim]`` and ``values [M]`` (NaN for FAIL) of one generation."""
    X = np.stack([space.from_params(t.params) for t in members])
    values = np.array(
        [
            t.value if is_feasible_complete(t) else np.nan
            for t in members
        ],
        dtype=np.float64,
    )
    return X, values


def _frozen(
    space: FusionSpace, g: int, m: int, x: np.ndarray, result: TrialResult, start: datetime
) -> FrozenTrial:
    value = float(result.value)
    attrs: dict[str, Any] = {
        "round": g,
        "member": m,
        # None, not NaN: a stored NaN never equals itself, so resumed trials would differ
        # (an ordering score has no interval, ESS or events)
        "ci_low": _finite_or_none(result.low),
        "ci_high": _finite_or_none(result.high),
        "ess": _finite_or_none(result.ess),
        "events": _finite_or_none(result.events),
    }
    attrs.update({f"metric:{k}": float(v) for k, v in result.metrics.items()})
    attrs.update(result.attrs)
    return build_trial(space, x, [value], attrs, result.infeasible, start)


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def build_trial(
    space: FusionSpace,
    x: np.ndarray,
    values: Sequence[float],
    attrs: Mapping[str, Any],
    infeasible: str,
    start: datetime,
    system_attrs: Mapping[str, Any] | None = None,
) -> FrozenTrial:
    """A trial of point ``x`` with ``values`` (one per study direction) and user ``attrs``.

    COMPLETE when every value is finite, else FAIL with user attr ``fail_reason``; an
    ``infeasible`` reason is stored as user attr ``infeasible``. Single- and
    multi-objective studies freeze their trials here alike.
    """
    attrs = dict(attrs)
    if infeasible:
        attrs[INFEASIBLE] = infeasible
    finite = all(math.isfinite(v) for v in values)
    if not finite:
        shown = values[0] if len(values) == 1 else list(values)
        attrs[FAIL_REASON] = f"{REASON_NONFINITE} {shown}"
    trial = create_trial(
        state=TrialState.COMPLETE if finite else TrialState.FAIL,
        values=list(values) if finite else None,
        params=space.to_params(x),
        distributions=dict(space.distributions()),
        user_attrs=attrs,
        system_attrs=dict(system_attrs or {}),
    )
    trial.datetime_start = start
    return trial


def member_numbers(g: int, members: Sequence[int], population: int) -> list[int]:
    """Trial numbers of ``members`` of round ``g``: ``g * population + member``, so a study's
    trials are numbered the same however many workers wrote them, in whatever order."""
    return [g * population + int(m) for m in members]


def _check_kept(
    current: Mapping[int, FrozenTrial], X: np.ndarray, space: FusionSpace, g: int
) -> None:
    for m, t in current.items():
        if not np.array_equal(space.from_params(t.params), X[m]):
            warnings.warn(
                f"stored trial {t.number} (round {g}, member {m}) differs from what CEM draws "
                "now (another numpy or fusiontune version?); keeping the stored trial",
                stacklevel=3,
            )

