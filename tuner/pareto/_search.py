"""A Pareto search stored in an Optuna study: one objective per metric, resumable.

A Pareto study is a multi-objective Optuna study (one direction per metric, so
``optuna-dashboard`` draws its front) created by :func:`create_pareto_study`. Besides the user
attrs of every fusiontune study (space, seed, settings) it stores ``fusiontune:pareto``: the
:class:`ParetoConfig` and control's estimates. Each evaluated weight vector is a trial whose
values are its metric estimates, tagged ``round`` and ``member`` (and ``scalarisation`` for
CEM), with every task's estimate and 95% interval in user attrs ``metric:<task>``,
``metric_low:<task>``, ``metric_high:<task>``. A guardrail-infeasible trial is COMPLETE with
user attr ``infeasible`` (the reason) and Optuna's system attr ``constraints`` ``[1.0]``, so
neither fusiontune nor Optuna puts it on the front. The strategy's state is never stored: it is
replayed from the trials of completed generations, so a resumed search draws the trials an
uninterrupted one would have.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import optuna
from optuna.storages import RDBStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from simulator.replay import OBJECTIVE
from tuner.evaluation.objective import FusionObjective
from tuner.pareto._config import ParetoConfig
from tuner.pareto._front import MetricEstimate, pareto_mask
from tuner.space import FusionSpace
from tuner.storage import ProjectStore, add_trials
from tuner.strategies import (
    BaseMultiStrategy,
    CEMConfig,
    NSGA2Multi,
    ScalarisedCEM,
    ScalarisedCEMConfig,
)
from tuner.study import (
    ATTR_CONFIG,
    ATTR_SEED,
    ATTR_SETTINGS,
    ATTR_SPACE,
    FAIL_REASON,
    REASON_NONFINITE,
    build_trial,
    is_feasible_complete,
    load_search,
    name_metrics,
)

__all__ = [
    "ATTR_PARETO",
    "ParetoObjective",
    "ParetoResult",
    "ParetoSearch",
    "create_pareto_study",
    "load_pareto",
    "make_strategy",
    "run_pareto",
]

ATTR_PARETO = "fusiontune:pareto"
_CONSTRAINTS = "constraints"  # Optuna's system attr: a value > 0 marks a violated constraint


@dataclass(frozen=True)
class ParetoResult:
    """What the evaluation of one weight vector gives a Pareto search.

    Args:
        metrics: every task's estimate with its interval (the objective too, if any).
        ess: effective sample size.
        infeasible: why it breaks a guardrail (``""``: feasible).
    """

    metrics: Mapping[str, MetricEstimate]
    ess: float
    infeasible: str = ""


@dataclass(frozen=True)
class ParetoObjective:
    """``W [M, S] -> list[ParetoResult]``: every metric with its interval, in one replay pass.

    Example:
        >>> evaluate = ParetoObjective(FusionObjective.for_workspace(ws))  # doctest: +SKIP
        >>> evaluate(np.array([[1.0, 0.5, 0.5]]))[0].metrics["click"]  # doctest: +SKIP
    """

    objective: FusionObjective

    def __call__(self, weights: np.ndarray) -> list[ParetoResult]:
        est, reasons = self.objective.population(weights)
        return [
            ParetoResult({m: MetricEstimate(float(est.value[p, i]), float(est.low[p, i]),
                                            float(est.high[p, i]))
                          for i, m in enumerate(est.metrics) if m != OBJECTIVE},
                         float(est.ess[p]), reasons[p])
            for p in range(len(est))
        ]


@dataclass(frozen=True)
class ParetoSearch:
    """A Pareto study and everything stored with it (see :func:`load_pareto`)."""

    study: optuna.Study
    storage: RDBStorage
    space: FusionSpace
    config: ParetoConfig
    seed: int
    settings: Mapping[str, Any]
    control: Mapping[str, MetricEstimate]


def create_pareto_study(url: str, study_name: str, space: FusionSpace, config: ParetoConfig,
                        seed: int, settings: Mapping[str, Any],
                        control: Mapping[str, MetricEstimate]) -> ParetoSearch:
    """Create a Pareto study (one direction per metric) with its settings stored.

    Args:
        url: SQLAlchemy URL of the database.
        study_name: a name not used in the database.
        space: the search space.
        config: the Pareto settings.
        seed: seed of the strategy.
        settings: JSON-able search settings (a
            :class:`~tuner.evaluation.search_data.SearchSettings` dict).
        control: control's estimate of (at least) every metric of ``config``.
    """
    missing = [m for m in config.metrics if m not in control]
    if missing:
        raise ValueError(f"control lacks an estimate of metric(s) {missing}")
    ProjectStore(url).ensure_schema()  # first: a bad URL is a one-line StorageError
    rdb = RDBStorage(url)
    study = optuna.create_study(storage=rdb, study_name=study_name,
                                directions=[StudyDirection.MAXIMIZE if d == "maximize"
                                            else StudyDirection.MINIMIZE
                                            for d in config.directions])
    name_metrics(study, config.metrics)
    attrs = {
        ATTR_PARETO: {**config.to_dict(),
                      "control": {m: [c.value, c.low, c.high] for m, c in control.items()}},
        ATTR_SPACE: space.to_dict(),
        ATTR_CONFIG: dataclasses.asdict(CEMConfig(population=config.population,
                                                  elite_fraction=config.elite_fraction)),
        ATTR_SEED: int(seed),
        ATTR_SETTINGS: dict(settings),
    }
    for key, value in attrs.items():
        study.set_user_attr(key, value)
    return ParetoSearch(study, rdb, space, config, int(seed), dict(settings), dict(control))


def load_pareto(url: str, study_name: str) -> ParetoSearch:
    """A Pareto study made by :func:`create_pareto_study`, with its stored settings.

    Raises:
        ValueError: the study is missing or is not a Pareto study.
    """
    study, spec = load_search(url, study_name)
    space, seed, settings = spec.space, spec.seed, spec.settings
    raw = study.user_attrs.get(ATTR_PARETO)
    if raw is None:
        raise ValueError(f"study {study_name!r} is not a Pareto study (it was made by "
                         "'fusiontune search run'); give --rounds 0 to see the front of its "
                         "trials, or start a new --study")
    control = {m: MetricEstimate(*map(float, v)) for m, v in raw.get("control", {}).items()}
    rdb = RDBStorage(url)
    study = optuna.load_study(study_name=study_name, storage=rdb)
    return ParetoSearch(study, rdb, space, ParetoConfig.from_dict(raw), seed, settings, control)


def make_strategy(config: ParetoConfig, space: FusionSpace, seed: int,
                  control: Mapping[str, MetricEstimate],
                  init_mean: np.ndarray | None = None) -> BaseMultiStrategy:
    """The strategy ``config`` names; CEM's lifts are relative to control's metrics."""
    k = len(config.metrics)
    if config.strategy == "nsga2":
        return NSGA2Multi(space, k, config.population, seed)
    reference = config.signs * np.array([control[m].value for m in config.metrics])
    cem = CEMConfig(population=config.population // config.n_scalarisations,
                    elite_fraction=config.elite_fraction)
    return ScalarisedCEM(space, reference,
                         ScalarisedCEMConfig(cem, config.n_scalarisations, config.scalarisation),
                         seed, init_mean)


def run_pareto(search: ParetoSearch, evaluate: Callable[[np.ndarray], Sequence[ParetoResult]],
               rounds: int, progress: bool = True,
               init_mean: np.ndarray | None = None) -> int:
    """Run ``rounds`` new complete generations of the study's strategy, resuming.

    Completed generations are replayed into a fresh strategy; the finished members of an
    interrupted generation are kept and only the missing ones evaluated; each generation's
    new trials are written in one transaction. Same seed and a row-wise ``evaluate`` give
    the same trials whether or not the run was interrupted. One process drives a study.

    Args:
        search: from :func:`create_pareto_study` or :func:`load_pareto`.
        evaluate: full weight vectors ``W [M', T]`` -> ``M'`` results, in order.
        rounds: new complete generations.
        progress: show a tqdm bar.
        init_mean: CEM's initial mean (e.g. the control weights); default box centre.

    Returns:
        The number of complete generations the study has now.
    """
    if rounds < 0:
        raise ValueError(f"rounds is {rounds}; need >= 0")
    space, cfg = search.space, search.config
    strategy = make_strategy(cfg, space, search.seed, search.control, init_mean)
    m_pop = cfg.population
    by_round = _by_round(search.study)
    g = 0
    seen: list[np.ndarray] = []
    while len(by_round.get(g, {})) == m_pop:
        strategy.ask(g)
        X, Y = _arrays(space, cfg, by_round[g])
        strategy.tell(g, X, Y)
        seen.append(Y)
        g += 1
    current = by_round.get(g, {})
    study_id = search.storage.get_study_id_from_name(search.study.study_name)
    from ranker.progress import progress_bar  # here: importing ranker loads torch

    bar = progress_bar(total=rounds, enabled=progress, unit="round",
               desc=f"{cfg.strategy} {search.study.study_name}")
    try:
        for _ in range(rounds):
            X = strategy.ask(g)
            missing = [m for m in range(m_pop) if m not in current]
            if missing:
                start = datetime.now()  # naive local time, as Optuna stores its own
                results = list(evaluate(space.matrix_to_weights(X[missing])))
                if len(results) != len(missing):
                    raise ValueError(f"evaluate returned {len(results)} results for "
                                     f"{len(missing)} weight vectors; need one per row")
                trials = [_frozen(space, cfg, g, m, X[m], r, start)
                          for m, r in zip(missing, results, strict=True)]
                add_trials(search.storage, study_id, trials)
            members = _by_round(search.study).get(g, {})
            if sorted(members) != list(range(m_pop)):
                raise RuntimeError(f"round {g} of study {search.study.study_name!r} has "
                                   f"members {sorted(members)} after evaluation; is another "
                                   "process driving it?")
            X_done, Y = _arrays(space, cfg, members)
            strategy.tell(g, X_done, Y)
            seen.append(Y)
            current = {}
            g += 1
            bar.update(1)
            all_y = np.concatenate(seen)
            ok = np.isfinite(all_y).all(axis=1)
            bar.set_postfix(front=int(pareto_mask(all_y[ok]).sum()))
    finally:
        bar.close()
    return g


def _by_round(study: optuna.Study) -> dict[int, dict[int, FrozenTrial]]:
    """``round -> member -> trial`` of the finished trials that hold a member (COMPLETE, or
    FAIL for a non-finite estimate); a duplicate keeps the lowest trial number."""
    out: dict[int, dict[int, FrozenTrial]] = {}
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL))
    for t in sorted(trials, key=lambda t: t.number):
        ua = t.user_attrs
        if "round" not in ua or "member" not in ua:
            continue
        if t.state == TrialState.FAIL and not str(ua.get(FAIL_REASON, "")).startswith(
                REASON_NONFINITE):
            continue
        out.setdefault(int(ua["round"]), {}).setdefault(int(ua["member"]), t)
    return out


def _arrays(space: FusionSpace, cfg: ParetoConfig,
            members: Mapping[int, FrozenTrial]) -> tuple[np.ndarray, np.ndarray]:
    """Stored ``X [M, dim]`` and maximised values ``Y [M, K]`` (NaN rows: failed or
    infeasible) of one generation, by member."""
    ordered = [members[m] for m in sorted(members)]
    X = np.stack([space.from_params(t.params) for t in ordered])
    nan = [math.nan] * len(cfg.metrics)
    Y = np.array([list(t.values) if is_feasible_complete(t) and t.values is not None else nan
                  for t in ordered], dtype=np.float64) * cfg.signs
    return X, Y


def _frozen(space: FusionSpace, cfg: ParetoConfig, g: int, m: int, x: np.ndarray,
            result: ParetoResult, start: datetime) -> FrozenTrial:
    missing = [k for k in cfg.metrics if k not in result.metrics]
    if missing:
        raise ValueError(f"evaluate gave no estimate of metric(s) {missing}")
    values = [float(result.metrics[k].value) for k in cfg.metrics]
    attrs: dict[str, Any] = {"round": g, "member": m, "ess": float(result.ess)}
    if cfg.strategy == "cem":
        attrs["scalarisation"] = m // (cfg.population // cfg.n_scalarisations)
    for name, e in result.metrics.items():
        attrs[f"metric:{name}"] = float(e.value)
        attrs[f"metric_low:{name}"] = float(e.low)
        attrs[f"metric_high:{name}"] = float(e.high)
    return build_trial(space, x, values, attrs, result.infeasible, start,
                       {_CONSTRAINTS: [1.0 if result.infeasible else 0.0]})
