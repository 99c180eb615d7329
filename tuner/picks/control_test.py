"""The control rule of an export: does the pick beat the control weights on held-out requests?

A pick replaces the control weights only when a test on requests it was not chosen on says
it is better. Two rules (:data:`CONTROL_TESTS`):

- ``"one-sided"`` (the default): the one-sided 95% lower bound of the paired objective lift
  of pick over control, estimated by ``cdr`` (DR on a reward model calibrated on the held-out
  log itself, cross-fitted: :func:`cdr`), is above 0. The question is one-sided (is the pick
  *better*?), so a two-sided interval spends half its error rate on a tail that can only
  keep control; and ``cdr``'s paired lift is no noisier than SNIPS's.
- ``"two-sided"`` (the rule before): the lower end of the two-sided 95% interval of the
  paired lift, by the study's own estimator, is above 0.

The test is recorded as :class:`ControlTest` in the export's ``extra["control_test"]``.
Choosing among the strategy's picks without spending held-out requests on the choice is
:func:`choose_on_search`: the picks after rounds 1, 2, 4, ... and the last are ordered by
``gated_dr`` (an ordering estimate with little label noise) on the *search* split, so the
whole held-out split is left to test the chosen one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.estimators import GatedDR, PooledDR
from simulator.replay import OBJECTIVE, Replay
from simulator.report import Arms
from simulator.streaming import StreamedReplay

__all__ = [
    "CDR",
    "CONTROL_TESTS",
    "DEFAULT_CONTROL_TEST",
    "ControlTest",
    "SearchChoice",
    "cdr",
    "choose_on_search",
    "gated_dr",
    "one_sided_of",
    "one_sided_test",
    "two_sided_test",
]

CONTROL_TESTS = ("one-sided", "two-sided")
"""The rules a pick must pass to replace the control weights (see the module docstring)."""
DEFAULT_CONTROL_TEST = "one-sided"
"""The rule ``search export`` applies unless told otherwise (measured in
``bench/search_quality.py``: at least as good as ``"two-sided"`` in true regret, and never
below control in truth, on world seeds 0-5; README, "The search and the noise")."""
CDR = "cdr"
"""The name the test records for :func:`cdr`."""
LEVEL = 0.95


def cdr() -> PooledDR:
    """``cdr``: doubly robust on the reward model calibrated on the log (cross-fitted), no
    pooling; the unbiased metric of the calibrated-DR family."""
    return PooledDR(shrinkage=1.0)


def gated_dr() -> GatedDR:
    """``gated_dr`` with its defaults: the calibrated-DR ordering estimate."""
    return GatedDR()


@dataclass(frozen=True)
class ControlTest:
    """The outcome of a control test.

    Args:
        rule: one of :data:`CONTROL_TESTS`.
        estimator: the estimator of the paired lift (``"cdr"``, or the study's).
        lift: the objective's paired lift of pick over control.
        lower_bound: the test's lower bound of the lift (one-sided at ``level``, or the
            low end of the two-sided ``level`` interval).
        level: the confidence level.
        n_requests: the requests the test ran on.
        split: where they come from (``"holdout"``: the whole held-out split;
            ``"holdout report half"``: the half the pick was not chosen on).

    Example:
        >>> t = ControlTest("one-sided", "cdr", 0.2, 0.01, 0.95, 10000, "holdout")
        >>> t.passed, t.verdict
        (True, 'pick')
    """

    rule: str
    estimator: str
    lift: float
    lower_bound: float
    level: float
    n_requests: int
    split: str

    def __post_init__(self) -> None:
        if self.rule not in CONTROL_TESTS:
            raise ValueError(f"control test {self.rule!r} is unknown; valid: "
                             f"{list(CONTROL_TESTS)}")

    @property
    def passed(self) -> bool:
        """Whether the lower bound is above 0 (a NaN bound does not pass)."""
        return bool(self.lower_bound > 0)

    @property
    def verdict(self) -> str:
        """``"pick"`` where the test passed, else ``"control"``."""
        return "pick" if self.passed else "control"

    def describe(self) -> str:
        """One line for a person, e.g. for the warning that control is exported."""
        bound = (f"one-sided {self.level:.0%} lower bound" if self.rule == "one-sided"
                 else f"two-sided {self.level:.0%} interval's lower end")
        where = ("held-out requests" if self.split == "holdout"
                 else f"requests ({self.split})")
        return (f"{self.estimator} paired objective lift {self.lift:.4g} over control, "
                f"{bound} {self.lower_bound:.4g}, on {self.n_requests} {where}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ControlTest:
        """The test of a :meth:`to_dict` record (its ``verdict`` and other keys, such as
        ``forced``, are not fields; a None bound reads as NaN).

        Raises:
            ValueError: a record that lacks a field, naming it.
        """
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in data]
        if missing:
            raise ValueError(f"control test record lacks {missing}; it has {sorted(data)}")

        def number(key: str) -> float:
            return float("nan") if data[key] is None else float(data[key])

        return cls(str(data["rule"]), str(data["estimator"]), number("lift"),
                   number("lower_bound"), float(data["level"]), int(data["n_requests"]),
                   str(data["split"]))

    def to_dict(self) -> dict[str, Any]:
        """The JSON record (``extra["control_test"]``); a NaN bound becomes None."""
        finite = {k: (v if np.isfinite(v) else None)
                  for k, v in (("lift", self.lift), ("lower_bound", self.lower_bound))}
        return {"rule": self.rule, "estimator": self.estimator, **finite,
                "level": self.level, "n_requests": self.n_requests, "split": self.split,
                "verdict": self.verdict}


def one_sided_test(replay: Replay | StreamedReplay, pick: np.ndarray, control: np.ndarray,
                   objective: Mapping[str, float], split: str = "holdout",
                   level: float = LEVEL) -> ControlTest:
    """The one-sided test of ``pick [T]`` against ``control [T]`` on ``replay``'s requests.

    The lower bound is the low end of the replay's interval method at the two-sided level
    ``2 level - 1`` (the one-sided ``level`` bound) around the paired lift, both arms on
    the same resampled requests. Give it a replay whose estimator is :func:`cdr` where the
    log is held whole; a streamed log (which cannot calibrate ``cdr``'s reward model on the
    whole log) tests with its own estimator's percentile bootstrap.

    Raises:
        ValueError: a level outside (0.5, 1), or a streamed replay whose interval cannot
            pair the arms from sums.
    """
    if not 0.5 < level < 1.0:
        raise ValueError(f"level must be in (0.5, 1), got {level}")
    weights = np.stack([np.asarray(control, float), np.asarray(pick, float)])
    name = CDR if replay.estimator == cdr() else replay.estimator.name
    return one_sided_of(Arms.of(replay, weights, objective), name, split, level)


def one_sided_of(arms: Arms, estimator: str, split: str = "holdout", level: float = LEVEL
                 ) -> ControlTest:
    """:func:`one_sided_test` of arms already evaluated, ``[control, pick]`` with the
    objective among their metrics (``estimator``: the name the test records)."""
    if not 0.5 < level < 1.0:
        raise ValueError(f"level must be in (0.5, 1), got {level}")
    m = arms.estimate.metrics.index(OBJECTIVE)
    value = arms.estimate.value  # [2, M]
    low, _ = arms.bounds(np.array([[-1.0, 1.0]]), level=2.0 * level - 1.0)
    return ControlTest("one-sided", estimator, float(value[1, m] - value[0, m]),
                       float(low[0, m]), level, arms.estimate.n, split)


def two_sided_test(lift: Any, estimator: str, n_requests: int,
                   split: str = "holdout") -> ControlTest:
    """The former rule, from the objective lift ``lift`` (an
    :class:`~simulator.estimators.Estimate` of an A/B report's paired lift)."""
    return ControlTest("two-sided", estimator, float(lift.value), float(lift.low),
                       float(lift.level), n_requests, split)


@dataclass(frozen=True)
class SearchChoice:
    """The outcome of :func:`choose_on_search`.

    Args:
        weights: ``[T]`` the chosen candidate's weights.
        candidate: its index among the candidates.
        values: ``[C]`` every candidate's ``gated_dr`` objective on the search split (an
            ordering estimate: what ranked them, never reported as a metric).
        n_requests: requests of the search split.
    """

    weights: np.ndarray
    candidate: int
    values: np.ndarray
    n_requests: int


def choose_on_search(replay: Replay, candidates: np.ndarray, control: np.ndarray,
                     objective: Mapping[str, float]) -> SearchChoice:
    """The candidate ``[C, T]`` with the best objective on ``replay`` (the search split,
    estimated by :func:`gated_dr`), pooled over the candidates and the control.

    Raises:
        ValueError: no candidate.
    """
    candidates = np.atleast_2d(np.asarray(candidates, dtype=np.float64))
    if len(candidates) == 0:
        raise ValueError("choose_on_search needs at least one candidate")
    est = replay.evaluate(np.vstack([np.asarray(control, float)[None], candidates]),
                          objective)
    values = est.value[1:, est.metrics.index(OBJECTIVE)]
    best = int(np.argmax(np.where(np.isfinite(values), values, -np.inf)))
    return SearchChoice(candidates[best].copy(), best, values, replay.feedback.n_requests)
