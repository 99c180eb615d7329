"""Batched CEM rounds over an Optuna study in an RDB (SQLite by default), resumable.

Every trial is an ordinary Optuna trial (``optuna-dashboard <url>`` shows them) tagged with
user attrs ``round`` and ``member``; the search settings live in study user attrs
(``fusiontune:space``, ``fusiontune:config``, ``fusiontune:seed``, ``fusiontune:settings``,
``fusiontune:init_mean``), so a search continues from the database alone. CEM's state is
never stored: it is replayed from the trials of completed rounds.
"""

from __future__ import annotations

import dataclasses
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import optuna
from optuna.storages import RDBStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial
from tqdm.auto import tqdm

from tuner.space import FusionSpace
from tuner.storage import ProjectStore
from tuner.strategies import CEM, CEMConfig, CEMSampler
from tuner.study._attrs import (
    ATTR_CONFIG,
    ATTR_INIT_MEAN,
    ATTR_SEED,
    ATTR_SETTINGS,
    ATTR_SPACE,
    _check_same,
    _json_roundtrip,
    _read_attrs,
    jsonable,
    name_metrics,
)
from tuner.study._history import (
    RoundSummary,
    _record,
    _summary,
    history,
    search_state,
    trials_table,
)

# constants defined here before the split (tuner.pareto imports some), re-exported
from tuner.study._trials import FAIL_REASON as FAIL_REASON
from tuner.study._trials import INFEASIBLE as INFEASIBLE
from tuner.study._trials import REASON_INTERRUPTED as REASON_INTERRUPTED
from tuner.study._trials import REASON_NONFINITE as REASON_NONFINITE
from tuner.study._trials import (
    TrialResult,
    _add_trials,
    _arrays,
    _check_kept,
    _fail_running,
    _frozen,
    _generations,
    _members,
    _round_members,
    build_trial,
    is_feasible_complete,
)

__all__ = [
    "RoundSummary",
    "TrialResult",
    "build_trial",
    "create_or_load_study",
    "history",
    "is_feasible_complete",
    "jsonable",
    "load_search",
    "run_rounds",
    "search_state",
    "stored_settings",
    "trials_table",
]

# URL of the storage each study was opened with here, so run_rounds can reach the project
# tables without reading Optuna's private storage handle.
_STUDY_URLS: weakref.WeakKeyDictionary[optuna.Study, str] = weakref.WeakKeyDictionary()



def create_or_load_study(
    storage: str,
    study_name: str,
    space: FusionSpace | None = None,
    config: CEMConfig | None = None,
    seed: int | None = None,
    settings: Mapping[str, Any] | None = None,
    create: bool = True,
    init_mean: np.ndarray | None = None,
) -> optuna.Study:
    """Open a fusiontune study, creating it (maximising, :class:`CEMSampler`) if needed.

    A new study stores ``space``, ``config``, ``seed``, ``settings`` (JSON-able) and the
    initial CEM mean as study user attrs; all of space, config and seed are required then.
    An existing study keeps what it stored: any of them passed here must agree.

    Args:
        storage: SQLAlchemy URL, e.g. ``"sqlite:///search.db"``.
        study_name: name of the study.
        space: the search space.
        config: CEM hyperparameters.
        seed: CEM seed.
        settings: other JSON-able settings of the search (data paths, objective...).
        create: if False, a missing study is an error.
        init_mean: initial CEM mean, ``[dim]`` or full weights ``[T]``; default box centre.

    Raises:
        ValueError: a setting conflicts with the stored one, the study is missing and
            ``create`` is False, or a new study lacks space/config/seed.
    """
    ProjectStore(storage).ensure_schema()  # first: a bad URL is a one-line StorageError
    rdb = RDBStorage(storage)
    names = optuna.get_all_study_names(rdb)
    if study_name in names:
        study = optuna.load_study(study_name=study_name, storage=rdb)
        pareto = "fusiontune:pareto" in study.user_attrs  # tuner.pareto: one direction a metric
        if not pareto and ATTR_SPACE not in study.user_attrs:
            raise ValueError(f"study {study_name!r} in {storage} is not a fusiontune study "
                             "(made by plain Optuna?)")
        if not pareto and study.directions != [StudyDirection.MAXIMIZE]:
            raise ValueError(f"study {study_name!r} in {storage} is not single-objective max")
        stored = _read_attrs(study)
        _check_same(study_name, "space", stored[0].to_dict(), space and space.to_dict())
        _check_same(
            study_name,
            "config",
            dataclasses.asdict(stored[1]),
            config and dataclasses.asdict(config),
        )
        _check_same(study_name, "seed", stored[2], seed)
        if settings is not None:
            _check_same(study_name, "settings", stored[3], _json_roundtrip(settings, "settings"))
        if init_mean is not None:
            mean = CEM(stored[0], stored[1], stored[2], init_mean).init_mean.tolist()
            _check_same(study_name, "init_mean", stored[4], mean)
        space, config, seed = stored[0], stored[1], stored[2]
        study.sampler = CEMSampler(space, config, seed, np.asarray(stored[4]))
    else:
        if not create:
            raise ValueError(
                f"no study named {study_name!r} in {storage}; existing studies: "
                f"{sorted(names) or 'none'} (create one with create=True)"
            )
        missing = [
            n for n, v in (("space", space), ("config", config), ("seed", seed)) if v is None
        ]
        if missing or space is None or config is None or seed is None:
            raise ValueError(f"a new study {study_name!r} needs {missing}")
        cem = CEM(space, config, seed, init_mean)
        attrs = {
            ATTR_SPACE: space.to_dict(),
            ATTR_CONFIG: dataclasses.asdict(config),
            ATTR_SEED: int(seed),
            ATTR_SETTINGS: _json_roundtrip(settings or {}, "settings"),
            ATTR_INIT_MEAN: cem.init_mean.tolist(),
        }
        sampler = CEMSampler(space, config, seed, cem.init_mean)
        study = optuna.create_study(
            storage=rdb, study_name=study_name, direction="maximize", sampler=sampler
        )
        name_metrics(study, ["objective"])  # the replay's name of the objective metric
        for key, value in attrs.items():
            study.set_user_attr(key, value)
    _STUDY_URLS[study] = storage
    return study


def stored_settings(study: optuna.Study) -> dict[str, Any]:
    """The search settings a study stored (``fusiontune:settings``; empty if none)."""
    return dict(study.user_attrs.get(ATTR_SETTINGS, {}))


def load_search(
    storage: str, study_name: str
) -> tuple[optuna.Study, FusionSpace, CEMConfig, int, dict[str, Any]]:
    """Everything needed to continue a search, from the database alone.

    Returns:
        ``(study, space, config, seed, settings)``; the study's sampler is the stored CEM.
    """
    study = create_or_load_study(storage, study_name, create=False)
    space, config, seed, settings, _ = _read_attrs(study)
    return study, space, config, seed, settings


def run_rounds(
    study: optuna.Study,
    space: FusionSpace,
    config: CEMConfig,
    seed: int,
    evaluate: Callable[[np.ndarray], Sequence[TrialResult]],
    rounds: int,
    progress: bool = True,
    init_mean: np.ndarray | None = None,
    store: ProjectStore | None = None,
) -> list[RoundSummary]:
    """Run ``rounds`` new complete CEM generations, resuming whatever the study holds.

    Resume: trials left RUNNING are marked FAIL (user attr ``fail_reason``); completed
    generations are replayed into CEM; finished members of the current generation are kept
    and only the missing ones are evaluated. Each trial is written in one transaction with
    its params (exactly the CEM row), value and user attrs ``round``, ``member``,
    ``ci_low``, ``ci_high``, ``ess``, ``events``, ``metric:<task>``; a non-finite value is
    written as a FAIL trial with a ``fail_reason``. Same seed and same ``evaluate`` give the
    same trials whether or not the run was interrupted, provided ``evaluate`` is row-wise (a
    row's result depends only on that row). Only one process may drive a study with this function.

    Args:
        study: a maximising study, e.g. from :func:`create_or_load_study`.
        space: the search space (must match the study's, if stored).
        config: CEM hyperparameters (must match).
        seed: CEM seed (must match).
        evaluate: maps full weight vectors ``W [M', T]`` (``tasks`` order) to ``M'``
            results, in order; ``M' = M`` except when finishing an interrupted generation.
        rounds: number of new complete generations.
        progress: show a tqdm bar over rounds.
        init_mean: initial CEM mean ``[dim]`` or ``[T]``; only for a study without trials.
        store: where round summaries go; default the project tables of the study's database
            (known when the study came from :func:`create_or_load_study`).

    Returns:
        Summaries of the generations completed by this call.
    """
    if rounds < 0:
        raise ValueError(f"rounds is {rounds}; need >= 0")
    cem = _prepare(study, space, config, seed, init_mean)
    own_store = store is None
    store = store if store is not None else _default_store(study)
    try:
        return _run(study, cem, evaluate, rounds, progress, store)
    finally:
        if own_store and store is not None:
            store.close()



# --- the loop -------------------------------------------------------------------------------


def _run(
    study: optuna.Study,
    cem: CEM,
    evaluate: Callable[[np.ndarray], Sequence[TrialResult]],
    rounds: int,
    progress: bool,
    store: ProjectStore | None,
) -> list[RoundSummary]:
    space, m_pop = cem.space, cem.config.population
    _fail_running(study)
    recorded = {r.round for r in store.rounds(study.study_name)} if store else set()
    current: dict[int, FrozenTrial] = {}
    for g, members, complete in _generations(_members(study), m_pop):
        if not complete:
            current = {t.user_attrs["member"]: t for t in members}
            break
        if g not in recorded and store is not None:
            _record(store, study.study_name, _summary(g, members, cem.state, space))
        cem.tell(g, *_arrays(space, members))
    out: list[RoundSummary] = []
    bar = tqdm(total=rounds, disable=not progress, desc=f"CEM {study.study_name}", unit="round")
    try:
        for _ in range(rounds):
            g = cem.state.generation
            X = cem.ask(g)
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
                _add_trials(
                    study,
                    [
                        _frozen(space, g, m, X[m], result, start)
                        for m, result in zip(missing, results, strict=True)
                    ],
                )
            members = _round_members(study, g, m_pop)
            summary = _summary(g, members, cem.state, space)
            cem.tell(g, *_arrays(space, members))
            if store is not None:
                _record(store, study.study_name, summary)
            out.append(summary)
            current = {}
            bar.update(1)
            bar.set_postfix(best=f"{summary.best_value:.5g}")
    finally:
        bar.close()
    return out


def _prepare(
    study: optuna.Study,
    space: FusionSpace,
    config: CEMConfig,
    seed: int,
    init_mean: np.ndarray | None,
) -> CEM:
    """Check the study against the arguments (storing what it lacks); build the CEM."""
    if study.directions != [StudyDirection.MAXIMIZE]:
        raise ValueError(f"study {study.study_name!r} must be single-objective, maximize (a "
                         "Pareto study continues with 'fusiontune search pareto')")
    attrs = study.user_attrs
    name = study.study_name
    given = {
        ATTR_SPACE: space.to_dict(),
        ATTR_CONFIG: dataclasses.asdict(config),
        ATTR_SEED: int(seed),
    }
    for key, value in given.items():
        if key in attrs:
            _check_same(name, key.split(":")[1], attrs[key], value)
        else:
            study.set_user_attr(key, value)
    stored = attrs.get(ATTR_INIT_MEAN)
    if init_mean is None:
        return CEM(space, config, seed, None if stored is None else np.asarray(stored))
    cem = CEM(space, config, seed, init_mean)
    wanted = cem.init_mean.tolist()
    used = stored if stored is not None else CEM(space, config, seed).init_mean.tolist()
    if wanted != used:
        if _members(study):
            raise ValueError(
                f"study {name!r} already has trials drawn from init_mean {used}, not "
                f"{wanted}; init_mean can only change before the first round"
            )
        study.set_user_attr(ATTR_INIT_MEAN, wanted)
        if isinstance(study.sampler, CEMSampler):
            study.sampler = CEMSampler(space, config, seed, cem.init_mean)
    return cem


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
