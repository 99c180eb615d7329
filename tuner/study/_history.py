"""Round summaries of a study, replayed from its stored trials: history, state and table.

A strategy's state is never stored; :func:`replayed_strategy` and :func:`history` replay it
from the trials of completed rounds.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from tuner.space import FusionSpace
from tuner.strategies import BaseStrategy
from tuner.study._attrs import SearchSpec, jsonable
from tuner.study._trials import (
    FAIL_REASON,
    INFEASIBLE,
    _arrays,
    _generations,
    _members,
    is_feasible_complete,
)

__all__ = ["RoundSummary", "completed_rounds", "history", "picks_by_round", "replayed_strategy",
           "trials_table"]


@dataclass(frozen=True)
class RoundSummary:
    """One round: its best trial and the strategy's state that generated it.

    ``best_*`` are NaN and ``best_trial`` is -1 when no trial of the round completed;
    ``mean`` is the strategy's pick before the round (CEM: its Gaussian's mean) and
    ``sigma`` its spread (CEM: sigma; NaN for strategies without one), both keyed by free
    task (the pinned weight is 1). ``best_events`` is the best trial's user attr ``events``
    (NaN when it has none).
    """

    round: int
    n_trials: int
    best_value: float
    best_low: float
    best_high: float
    best_trial: int
    mean: dict[str, float]
    sigma: dict[str, float]
    best_events: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form; non-finite numbers become ``None``."""
        return jsonable(dataclasses.asdict(self))


def completed_rounds(study: optuna.Study, population: int) -> int:
    """Complete generations the study holds, from its trials alone (no strategy is built or
    replayed: for Optuna's samplers a replay re-asks every generation)."""
    return sum(1 for _, _, complete in _generations(_members(study), population) if complete)


def replayed_strategy(study: optuna.Study, search: SearchSpec) -> tuple[BaseStrategy, int]:
    """The study's strategy after every completed generation, and their number (e.g. to
    export its pick)."""
    strategy = search.build()
    done = 0
    for g, members, complete in _generations(_members(study), search.population):
        if complete:
            strategy.ask(g)
            strategy.tell(g, *_arrays(search.space, members))
            done = g + 1
    return strategy, done


def picks_by_round(study: optuna.Study, search: SearchSpec) -> np.ndarray:
    """``[G, dim]`` the strategy's pick after each of the study's ``G`` completed
    generations, in order: the candidates of a validated export
    (:func:`tuner.picks.picking.validated_export`)."""
    strategy = search.build()
    picks: list[np.ndarray] = []
    for g, members, complete in _generations(_members(study), search.population):
        if complete:
            strategy.ask(g)
            strategy.tell(g, *_arrays(search.space, members))
            picks.append(np.asarray(strategy.pick(), dtype=np.float64))
    return np.stack(picks) if picks else np.empty((0, search.space.dim))


def history(study: optuna.Study, search: SearchSpec) -> list[RoundSummary]:
    """Summaries of every round in the study, the last one possibly partial."""
    if len(study.directions) > 1:
        raise ValueError(f"study {study.study_name!r} is a Pareto study; show its front with "
                         f"'fusiontune search pareto --study {study.study_name} --rounds 0'")
    strategy = search.build()
    out = []
    for g, members, complete in _generations(_members(study), search.population):
        out.append(_summary(g, members, strategy, search.space))
        if complete:
            strategy.ask(g)
            strategy.tell(g, *_arrays(search.space, members))
    return out


def trials_table(study: optuna.Study) -> list[dict[str, Any]]:
    """One JSON-able dict per trial (non-finite numbers as ``None``), by trial number."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        ua = t.user_attrs
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "round": ua.get("round"),
                "member": ua.get("member"),
                "value": t.values[0] if t.values is not None and len(t.values) == 1 else None,
                "values": None if t.values is None else list(t.values),
                "ci_low": ua.get("ci_low"),
                "ci_high": ua.get("ci_high"),
                "ess": ua.get("ess"),
                "events": ua.get("events"),
                "params": dict(t.params),
                "metrics": {k[7:]: v for k, v in ua.items() if k.startswith("metric:")},
                "auc": {k[4:]: v for k, v in ua.items() if k.startswith("auc:")},
                "fusion": {k[7:]: v for k, v in ua.items() if k.startswith("fusion:")},
                "ranker": ua.get("ranker"),
                "fail_reason": ua.get(FAIL_REASON),
                "infeasible": ua.get(INFEASIBLE),
                "datetime_start": _iso(t.datetime_start),
                "datetime_complete": _iso(t.datetime_complete),
            }
        )
    return [jsonable(r) for r in rows]


def _summary(
    g: int, members: Sequence[FrozenTrial], strategy: BaseStrategy, space: FusionSpace
) -> RoundSummary:
    done = [t for t in members if t.state == TrialState.COMPLETE and t.value is not None]
    feasible = [t for t in done if is_feasible_complete(t)]
    best = max(feasible, key=lambda t: (t.value, -t.number)) if feasible else None
    ua = best.user_attrs if best is not None else {}
    return RoundSummary(
        round=g,
        n_trials=len(done),
        best_value=float(best.value) if best is not None and best.value is not None else math.nan,
        best_low=_float_or_nan(ua.get("ci_low")),  # None: an ordering score's, no interval
        best_high=_float_or_nan(ua.get("ci_high")),
        best_trial=best.number if best is not None else -1,
        mean=dict(zip(space.free_tasks, map(float, strategy.pick()), strict=True)),
        sigma=dict(zip(space.free_tasks, map(float, strategy.spread()), strict=True)),
        best_events=_float_or_nan(ua.get("events")),
    )


def _float_or_nan(x: Any) -> float:
    return math.nan if x is None else float(x)


def _iso(d: datetime | None) -> str | None:
    return None if d is None else d.isoformat()
