"""The study loop: rounds of any registered strategy over a study, in one process.

Each round asks the strategy for its population, evaluates the members not yet stored in
one call, writes them in one transaction and tells the strategy. On (re)start, trials left
RUNNING are marked FAIL, completed generations are replayed into a fresh strategy, and the
finished members of an interrupted generation are kept; so a run that is stopped anywhere
and started again ends with the trials an uninterrupted run writes.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Sequence
from datetime import datetime

import numpy as np
import optuna
from optuna.storages import RDBStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial

from tuner.storage import ProjectStore, TrialNumberTaken, add_trials
from tuner.strategies import BaseStrategy
from tuner.study._attrs import (
    ATTR_CONFIG,
    ATTR_INIT_MEAN,
    ATTR_SEED,
    ATTR_SPACE,
    ATTR_STRATEGY,
    SearchSpec,
    _check_same,
)
from tuner.study._history import RoundSummary, _summary
from tuner.study._live import check_no_open_live_round
from tuner.study._open import _STUDY_URLS
from tuner.study._round_records import record_round
from tuner.study._trials import (
    TrialResult,
    _arrays,
    _check_kept,
    _fail_running,
    _frozen,
    _generations,
    _members,
    _round_members,
    member_numbers,
)

__all__ = ["advance", "check_single_objective", "run_rounds"]

Evaluate = Callable[[np.ndarray], Sequence[TrialResult]]


def run_rounds(
    study: optuna.Study,
    search: SearchSpec,
    evaluate: Evaluate,
    rounds: int | None = None,
    until: int | None = None,
    progress: bool = True,
    store: ProjectStore | None = None,
    on_round: Callable[[RoundSummary], None] | None = None,
) -> list[RoundSummary]:
    """Run the study's strategy until it has ``until`` complete generations, or for
    ``rounds`` more, resuming whatever the study holds.

    Give exactly one of ``rounds`` and ``until``. ``until`` is idempotent: running it again
    after a crash, a Ctrl-C or a finished run ends at the same study. Each trial is
    written with its params (exactly the strategy's row), value and user attrs ``round``,
    ``member``, ``ci_low``, ``ci_high``, ``ess``, ``events``, ``metric:<task>``; a
    non-finite value is written as a FAIL trial with a ``fail_reason``. Same seed and same
    ``evaluate`` give the same trials whether or not the run was interrupted, provided
    ``evaluate`` is row-wise (a row's result depends only on that row). Only one process
    may drive a study with this function (many use :func:`tuner.study.run_worker`).

    Args:
        study: a maximising study, e.g. from :func:`create_or_load_study`.
        search: what the study searches and how (must match what the study stored; a
            study without stored settings gets them).
        evaluate: maps full weight vectors ``W [M', T]`` (``tasks`` order) to ``M'``
            results, in order; ``M' = M`` except when finishing an interrupted generation.
        rounds: number of new complete generations (an interrupted one counts as one).
        until: complete generations the study should have when this returns.
        progress: show a bar over rounds on stderr (when it is a terminal).
        store: where round summaries go; default the project tables of the study's database
            (known when the study came from :func:`create_or_load_study`).
        on_round: called with each generation's summary as soon as it is complete and
            recorded (e.g. to stream it as a JSON line).

    Returns:
        Summaries of the generations completed by this call.
    """
    if (rounds is None) == (until is None):
        raise ValueError("give exactly one of rounds (more generations) and until (a total)")
    for name, value in (("rounds", rounds), ("until", until)):
        if value is not None and value < 0:
            raise ValueError(f"{name} is {value}; need >= 0")
    _prepare(study, search)
    own_store = store is None
    store = store if store is not None else _default_store(study)
    try:
        return _run(study, search, evaluate, rounds, until, progress, store, on_round)
    finally:
        if own_store and store is not None:
            store.close()


def advance(strategy: BaseStrategy, generation: int, X: np.ndarray, values: np.ndarray) -> None:
    """Tell ``strategy`` generation ``generation``, asking it first, as an uninterrupted run
    would have (a strategy that draws on ask, such as Optuna's samplers, stays in step)."""
    strategy.ask(generation)
    strategy.tell(generation, X, values)


def _run(study: optuna.Study, search: SearchSpec, evaluate: Evaluate, rounds: int | None,
         until: int | None, progress: bool, store: ProjectStore | None,
         on_round: Callable[[RoundSummary], None] | None = None) -> list[RoundSummary]:
    space, m_pop = search.space, search.population
    strategy = search.build()
    _fail_running(study)
    recorded = {r.round for r in store.rounds(study.study_name)} if store else set()
    current: dict[int, FrozenTrial] = {}
    g = 0
    for g_done, members, complete in _generations(_members(study), m_pop):
        if not complete:
            current = {t.user_attrs["member"]: t for t in members}
            break
        if g_done not in recorded and store is not None:
            record_round(store, study.study_name, _summary(g_done, members, strategy, space))
        advance(strategy, g_done, *_arrays(space, members))
        g = g_done + 1
    n_new = rounds if rounds is not None else max(0, int(until or 0) - g)
    out: list[RoundSummary] = []
    from ranker.progress import progress_bar  # here: importing ranker loads torch

    bar = progress_bar(total=n_new, enabled=progress, desc=f"{search.strategy} {study.study_name}",
               unit="round")
    try:
        for _ in range(n_new):
            X = strategy.ask(g)
            _check_kept(current, X, space, g)
            missing = [m for m in range(m_pop) if m not in current]
            if missing:
                start = datetime.now()  # naive local time, as Optuna stores its own
                results = list(evaluate(space.matrix_to_weights(X[missing])))
                if len(results) != len(missing):
                    raise ValueError(
                        f"evaluate returned {len(results)} results for {len(missing)} weight "
                        "vectors; it must return one per row, in order"
                    )
                _add_trials(study, [_frozen(space, g, m, X[m], result, start)
                                    for m, result in zip(missing, results, strict=True)],
                            member_numbers(g, missing, m_pop))
            members = _round_members(study, g, m_pop)
            summary = _summary(g, members, strategy, space)
            strategy.tell(g, *_arrays(space, members))
            if store is not None:
                record_round(store, study.study_name, summary)
            out.append(summary)
            if on_round is not None:
                on_round(summary)
            current = {}
            g += 1
            bar.update(1)
            bar.set_postfix(best=f"{summary.best_value:.5g}")
    finally:
        bar.close()
    return out


def check_single_objective(study: optuna.Study) -> None:
    """Refuse a study the loop cannot run: a Pareto (multi-objective) or minimising one.

    Raises:
        ValueError: saying which command continues a Pareto study.
    """
    if study.directions != [StudyDirection.MAXIMIZE]:
        raise ValueError(f"study {study.study_name!r} must be single-objective, maximize (a "
                         "Pareto study continues with 'fusiontune search pareto')")


def _prepare(study: optuna.Study, search: SearchSpec) -> None:
    """Check the study against ``search``, storing what it lacks."""
    check_single_objective(study)
    check_no_open_live_round(study)
    attrs = study.user_attrs
    name = study.study_name
    given = {
        ATTR_STRATEGY: search.strategy,
        ATTR_SPACE: search.space.to_dict(),
        ATTR_CONFIG: dataclasses.asdict(search.config),
        ATTR_SEED: int(search.seed),
    }
    for key, value in given.items():
        if key in attrs:
            _check_same(name, key.split(":")[1], attrs[key], value)
        elif key == ATTR_STRATEGY and ATTR_CONFIG in attrs:
            _check_same(name, "strategy", "cem", value)  # stored before strategies were named
        else:
            study.set_user_attr(key, value)
    wanted = list(search.init_mean)
    stored = attrs.get(ATTR_INIT_MEAN)
    if stored is not None and stored != wanted and _members(study):
        raise ValueError(
            f"study {name!r} already has trials drawn from init_mean {stored}, not "
            f"{wanted}; init_mean can only change before the first round"
        )
    if stored != wanted:
        study.set_user_attr(ATTR_INIT_MEAN, wanted)


def _default_store(study: optuna.Study) -> ProjectStore | None:
    url = _STUDY_URLS.get(study)
    if url is None:
        warnings.warn(
            f"study {study.study_name!r} was not opened with create_or_load_study; "
            "round summaries are not written to the project tables (pass store=)",
            stacklevel=3,
        )
        return None
    return ProjectStore(url)


def _add_trials(
    study: optuna.Study, trials: Sequence[FrozenTrial], numbers: Sequence[int] | None = None
) -> None:
    """Write ``trials`` into ``study`` in one transaction (:mod:`tuner.storage._trial_writer`),
    numbered ``numbers`` if given and free, else by arrival (a study that also holds trials
    other than its members, e.g. one left RUNNING by a killed ``study.ask``).

    A study not in an RDB, or whose ``add_trial`` was replaced on the instance (a wrapper,
    a test double), gets them one ``add_trial`` at a time instead (numbered by arrival).
    """
    storage = getattr(study, "_storage", None)
    rdb = getattr(storage, "_backend", storage)  # Optuna wraps an RDBStorage in a cache
    if not isinstance(rdb, RDBStorage) or "add_trial" in vars(study):
        for trial in trials:
            study.add_trial(trial)
        return
    study_id = rdb.get_study_id_from_name(study.study_name)
    try:
        add_trials(rdb, study_id, trials, numbers)
    except TrialNumberTaken:
        add_trials(rdb, study_id, trials, None)
