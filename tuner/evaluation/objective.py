"""The objective: a population of fusion weight vectors -> estimated business value.

It joins the score table and the simulator: the replay evaluates a whole CEM
generation in one vectorized pass and each weight vector becomes one
:class:`~tuner.study.TrialResult` (objective with its interval, ESS and the
per-task estimates).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from simulator.proxies import ORDERING_SCORES, AUCProxy
from simulator.replay import OBJECTIVE, PopulationEstimate, Replay, objective_matrix
from simulator.streaming import PopulationSums, StreamedReplay, metric_names
from tuner.evaluation.guardrails import (
    Guardrail,
    guardrail_reasons,
    parse_guardrails,
    reasons_from,
)
from tuner.evaluation.search_data import SEARCH, Workspace, control_weights
from tuner.study import TrialResult
from tuner.weights_text import Numbers, parse_task_numbers

if TYPE_CHECKING:
    from simulator.estimators import BaseEstimator
    from tuner.evaluation.streamed import StreamedWorkspace

__all__ = ["OBJECTIVE_WEIGHTS", "FusionObjective", "parse_objective"]


OBJECTIVE_WEIGHTS = Numbers(not_all_zero=True)
"""Valid objective weights: finite, not all zero (nothing to maximise)."""


def parse_objective(text: str, tasks: Sequence[str] | None = None,
                    what: str = "--objective") -> dict[str, float]:
    """Parse ``"click=1,conversion=10,like=5"`` into task -> weight.

    Args:
        text: the list.
        tasks: the valid task names (the log's tasks; None: checked later, by the
            :class:`~tuner.evaluation.search_data.Workspace`).
        what: the option or setting named in messages.

    Raises:
        ValueError: a malformed term, a task given twice, an unknown task (naming the
            valid ones), a weight that is not finite, or only zero weights.

    Example:
        >>> parse_objective("click=1,like=5")
        {'click': 1.0, 'like': 5.0}
    """
    return parse_task_numbers(text, what, names=tasks, numbers=OBJECTIVE_WEIGHTS,
                              value="weight", example="click=1,like=5")


@dataclass(frozen=True)
class FusionObjective:
    """Callable ``W [M, S] -> list[TrialResult]`` over one replay.

    With guardrails, the control weights are evaluated in the same pass and
    each weight vector's paired lift over control is checked; a vector that
    breaks one gets ``TrialResult.infeasible`` set to the reason.

    Args:
        replay: the replay of the search split of the log (held whole, or streamed).
        objective: task -> weight of the business objective.
        guardrails: metric floors relative to control.
        control: ``[S]`` control weights (needed with guardrails).
        ordering: ``"auc"`` or ``"gauc"`` (:data:`simulator.proxies.ORDERING_SCORES`):
            each vector's value is that fused-score AUC proxy on the replay's log, combined
            with the objective's weights, and each task's "metric" its AUC: an ordering
            score with no unit and no interval (``low``/``high`` nan), not an estimate.

    Example:
        >>> obj = FusionObjective(replay, {"click": 1.0, "conversion": 10.0})  # doctest: +SKIP
        >>> results = obj(np.array([[1.0, 0.5], [1.0, 2.0]]))  # doctest: +SKIP
    """

    replay: Replay | StreamedReplay
    objective: Mapping[str, float] = field(default_factory=dict)
    guardrails: tuple[Guardrail, ...] = ()
    control: np.ndarray | None = None
    ordering: str | None = None

    def __post_init__(self) -> None:
        if self.guardrails and self.control is None:
            raise ValueError("guardrails are judged against control: give control weights")
        if self.ordering is not None:
            if self.ordering not in ORDERING_SCORES:
                raise ValueError(f"unknown ordering score {self.ordering!r}; valid: "
                                 f"{list(ORDERING_SCORES)}")
            if self.guardrails:
                raise ValueError(f"guardrails judge a metric's paired lift over control, and "
                                 f"ordering score {self.ordering!r} has none; search with an "
                                 "estimator (snips, dr, ...) or drop the guardrails")
            if not isinstance(self.replay, Replay):
                raise ValueError(f"ordering score {self.ordering!r} needs the log held whole")
            object.__setattr__(self, "_proxy", AUCProxy(
                self.replay.feedback, self.replay.scores, self.replay.score_tasks,
                self.replay.fusion))

    @classmethod
    def for_workspace(cls, ws: Workspace | StreamedWorkspace, part: str = SEARCH,
                      estimator: BaseEstimator | None = None) -> FusionObjective:
        """The objective a study's settings define, on one split of its log.

        Args:
            estimator: estimate with this instead of the study's estimator (a log held
                whole only), e.g. the ordering estimate that pre-screens a live round.
        """
        s = ws.settings
        guardrails = parse_guardrails(s.guardrails, ws.tasks)
        control = control_weights(ws) if guardrails or s.control is not None else None
        if estimator is None:
            replay: Replay | StreamedReplay = ws.replay(part)
        elif isinstance(ws, Workspace):
            replay = ws.replay_as(part, estimator)
        else:
            raise ValueError(f"estimator {estimator.name!r} instead of the study's needs the "
                             "log held whole, not streamed")
        ordering = s.ordering_score if estimator is None else None
        return cls(replay, dict(s.objective), guardrails, control, ordering)

    def __call__(self, weights: np.ndarray) -> Sequence[TrialResult]:
        result, reasons = self.population(weights)
        out = []
        for p in range(len(result)):
            metrics = {t: float(result.value[p, i])
                       for i, t in enumerate(self.replay.tasks)}
            base = TrialResult.from_estimate(result.estimate(p, OBJECTIVE), metrics)
            out.append(dataclasses.replace(base, infeasible=reasons[p]))
        return out

    def population(self, weights: np.ndarray) -> tuple[PopulationEstimate, list[str]]:
        """Every metric of every weight vector ``W [P, S]`` with its interval, in one pass.

        Returns:
            The estimates (``[P, M]`` per-task metrics, then the objective) and, per
            vector, why it breaks a guardrail (``""`` when feasible).
        """
        weights = np.atleast_2d(np.asarray(weights, dtype=float))
        tasks = self.replay.tasks
        if self.ordering is not None:
            return self._ordering_scores(weights), [""] * len(weights)
        if isinstance(self.replay, StreamedReplay):  # sums of chunks, no per-request terms
            return self._streamed(weights)
        if self.guardrails:
            assert self.control is not None
            terms = self.replay.terms(np.vstack([self.control[None, :], weights]))
            reasons = guardrail_reasons(terms, self.replay.interval, tasks, self.guardrails,
                                        self.replay.request_ids)
            terms = terms.take(np.arange(1, len(weights) + 1))
        else:
            terms = self.replay.terms(weights)
            reasons = [""] * len(weights)
        return self.replay.estimates(terms, self.objective), reasons

    def _ordering_scores(self, weights: np.ndarray) -> PopulationEstimate:
        """The ordering score of every vector (each task's AUC, then the combined one) in
        a :class:`PopulationEstimate` whose intervals, ESS and events are nan."""
        proxy: AUCProxy = self.__dict__["_proxy"]
        scores = proxy.evaluate(weights, self.objective)
        per_task, combined = ((scores.auc, scores.auc_combined) if self.ordering == "auc"
                              else (scores.gauc, scores.gauc_combined))
        value = np.concatenate([per_task, combined[:, None]], axis=1)
        nan = np.full_like(value, np.nan)
        return PopulationEstimate(metric_names(self.replay.tasks, self.objective), value, nan,
                                  nan.copy(), np.full(len(value), np.nan),
                                  proxy.feedback.n_requests, self.replay.interval.level,
                                  nan.copy())

    def _streamed(self, weights: np.ndarray) -> tuple[PopulationEstimate, list[str]]:
        """:meth:`population` of a streamed replay: one pass over the log, control first
        when guardrails judge against it."""
        replay = self.replay
        assert isinstance(replay, StreamedReplay)
        if not self.guardrails:
            return replay.evaluate(weights, self.objective), [""] * len(weights)
        assert self.control is not None
        sums = replay.sums(np.vstack([self.control[None, :], weights]), self.objective)
        reasons = streamed_guardrail_reasons(sums, replay, self.guardrails)
        treated = sums.take(np.arange(1, len(weights) + 1))
        combine = objective_matrix(replay.tasks, self.objective)
        return treated.estimate(replay.interval, metric_names(replay.tasks, self.objective),
                                combine), reasons


def streamed_guardrail_reasons(sums: PopulationSums, replay: StreamedReplay,
                               guardrails: Sequence[Guardrail]) -> list[str]:
    """:func:`guardrail_reasons` from the sums of ``1 + P`` policies (control first) taken
    with the objective's ``combine``: its first ``T`` metrics are the tasks."""
    tasks = replay.tasks
    n_treat = len(sums.weight_sum) - 1
    control = sums.terms.values()[0, :len(tasks)]
    contrast = np.concatenate([-np.ones((n_treat, 1)), np.eye(n_treat)], axis=1)
    lift_low, _ = replay.interval.bounds_from(sums.terms, contrast)
    return reasons_from(control, lift_low[:, :len(tasks)], tasks, guardrails)
