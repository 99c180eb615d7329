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

import numpy as np

from simulator.replay import OBJECTIVE, PopulationEstimate, Replay
from tuner.evaluation.guardrails import Guardrail, guardrail_reasons, parse_guardrails
from tuner.evaluation.search_data import SEARCH, Workspace
from tuner.study import TrialResult

__all__ = ["FusionObjective", "parse_objective"]


def parse_objective(text: str) -> dict[str, float]:
    """Parse ``"click=1,conversion=10,like=5"`` into task -> weight.

    Raises:
        ValueError: a malformed term, naming it and the expected form.
    """
    out: dict[str, float] = {}
    for term in filter(None, (t.strip() for t in text.split(","))):
        name, sep, weight = term.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            out[name.strip()] = float(weight)
        except ValueError:
            raise ValueError(
                f"objective term {term!r} is not <task>=<weight>, e.g. 'click=1,like=5'"
            ) from None
        if not np.isfinite(out[name.strip()]):
            raise ValueError(f"objective weight of {name.strip()!r} must be finite")
    if not out:
        raise ValueError("objective is empty; give <task>=<weight> terms, e.g. 'click=1'")
    return out


@dataclass(frozen=True)
class FusionObjective:
    """Callable ``W [M, S] -> list[TrialResult]`` over one replay.

    With guardrails, the control weights are evaluated in the same pass and
    each weight vector's paired lift over control is checked; a vector that
    breaks one gets ``TrialResult.infeasible`` set to the reason.

    Args:
        replay: the replay of the search split of the log.
        objective: task -> weight of the business objective.
        guardrails: metric floors relative to control.
        control: ``[S]`` control weights (needed with guardrails).

    Example:
        >>> obj = FusionObjective(replay, {"click": 1.0, "conversion": 10.0})  # doctest: +SKIP
        >>> results = obj(np.array([[1.0, 0.5], [1.0, 2.0]]))  # doctest: +SKIP
    """

    replay: Replay
    objective: Mapping[str, float] = field(default_factory=dict)
    guardrails: tuple[Guardrail, ...] = ()
    control: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.guardrails and self.control is None:
            raise ValueError("guardrails are judged against control: give control weights")

    @classmethod
    def for_workspace(cls, ws: Workspace, part: str = SEARCH) -> FusionObjective:
        """The objective a study's settings define, on one split of its log."""
        s = ws.settings
        guardrails = parse_guardrails(s.guardrails, ws.traffic.tasks)
        control = None if s.control is None else np.asarray(s.control, dtype=float)
        if guardrails and control is None:
            control = np.ones(len(ws.score_tasks))
        return cls(ws.replay(part), dict(s.objective), guardrails, control)

    def __call__(self, weights: np.ndarray) -> Sequence[TrialResult]:
        result, reasons = self.population(weights)
        out = []
        for p in range(len(result)):
            metrics = {t: float(result.value[p, i])
                       for i, t in enumerate(self.replay.feedback.tasks)}
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
        tasks = self.replay.feedback.tasks
        if self.guardrails:
            assert self.control is not None
            terms = self.replay.terms(np.vstack([self.control[None, :], weights]))
            reasons = guardrail_reasons(terms, self.replay.interval, tasks, self.guardrails)
            terms = terms.take(np.arange(1, len(weights) + 1))
        else:
            terms = self.replay.terms(weights)
            reasons = [""] * len(weights)
        return self.replay.estimates(terms, self.objective), reasons
