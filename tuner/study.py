"""Batched CEM rounds over an Optuna study in an RDB (SQLite by default), resumable.

Every trial is an ordinary Optuna trial (``optuna-dashboard <url>`` shows them) tagged with
user attrs ``round`` and ``member``; the search settings live in study user attrs
(``fusiontune:space``, ``fusiontune:config``, ``fusiontune:seed``, ``fusiontune:settings``,
``fusiontune:init_mean``), so a search continues from the database alone. CEM's state is
never stored: it is replayed from the trials of completed rounds.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import optuna
from optuna.storages import RDBStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState, create_trial
from tqdm.auto import tqdm

from tuner._trial_writer import add_trials
from tuner.space import FusionSpace
from tuner.storage import ProjectStore, RoundRecord
from tuner.strategies import CEM, CEMConfig, CEMSampler, CEMState

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

ATTR_SPACE = "fusiontune:space"
ATTR_CONFIG = "fusiontune:config"
ATTR_SEED = "fusiontune:seed"
ATTR_SETTINGS = "fusiontune:settings"
ATTR_INIT_MEAN = "fusiontune:init_mean"
FAIL_REASON = "fail_reason"
REASON_NONFINITE = "non-finite objective value"
INFEASIBLE = "infeasible"
REASON_INTERRUPTED = "left RUNNING by an interrupted run; marked FAIL on resume"

# URL of the storage each study was opened with here, so run_rounds can reach the project
# tables without reading Optuna's private storage handle.
_STUDY_URLS: weakref.WeakKeyDictionary[optuna.Study, str] = weakref.WeakKeyDictionary()


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


@dataclass(frozen=True)
class RoundSummary:
    """One CEM round: its best trial and the CEM state that generated it.

    ``best_*`` are NaN and ``best_trial`` is -1 when no trial of the round completed;
    ``mean``/``sigma`` are keyed by free task (the pinned weight is 1). ``best_events``
    is the best trial's user attr ``events`` (NaN when it has none).
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
    rdb = RDBStorage(storage)
    ProjectStore(storage).ensure_schema()
    names = optuna.get_all_study_names(rdb)
    if study_name in names:
        study = optuna.load_study(study_name=study_name, storage=rdb)
        pareto = "fusiontune:pareto" in study.user_attrs  # tuner.pareto: one direction a metric
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


def search_state(study: optuna.Study, space: FusionSpace, config: CEMConfig) -> CEMState:
    """CEM state after every completed generation of the study (e.g. to export its mean)."""
    cem = CEM(space, config, 0, _stored_init_mean(study))
    for _, members, complete in _generations(_members(study), config.population):
        if complete:
            cem.tell(cem.state.generation, *_arrays(space, members))
    return cem.state


def history(study: optuna.Study, space: FusionSpace, config: CEMConfig) -> list[RoundSummary]:
    """Summaries of every round in the study, the last one possibly partial."""
    if len(study.directions) > 1:
        raise ValueError(f"study {study.study_name!r} is a Pareto study; show its front with "
                         f"'fusiontune search pareto --study {study.study_name} --rounds 0'")
    cem = CEM(space, config, 0, _stored_init_mean(study))
    out = []
    for g, members, complete in _generations(_members(study), config.population):
        out.append(_summary(g, members, cem.state, space))
        if complete:
            cem.tell(g, *_arrays(space, members))
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


def _summary(
    g: int, members: Sequence[FrozenTrial], state: CEMState, space: FusionSpace
) -> RoundSummary:
    done = [t for t in members if t.state == TrialState.COMPLETE and t.value is not None]
    feasible = [t for t in done if is_feasible_complete(t)]
    best = max(feasible, key=lambda t: (t.value, -t.number)) if feasible else None
    ua = best.user_attrs if best is not None else {}
    return RoundSummary(
        round=g,
        n_trials=len(done),
        best_value=float(best.value) if best is not None and best.value is not None else math.nan,
        best_low=float(ua.get("ci_low", math.nan)),
        best_high=float(ua.get("ci_high", math.nan)),
        best_trial=best.number if best is not None else -1,
        mean=dict(zip(space.free_tasks, state.mean, strict=True)),
        sigma=dict(zip(space.free_tasks, state.sigma, strict=True)),
        best_events=_float_or_nan(ua.get("events")),
    )


def _float_or_nan(x: Any) -> float:
    return math.nan if x is None else float(x)


def _frozen(
    space: FusionSpace, g: int, m: int, x: np.ndarray, result: TrialResult, start: datetime
) -> FrozenTrial:
    value = float(result.value)
    attrs: dict[str, Any] = {
        "round": g,
        "member": m,
        "ci_low": float(result.low),
        "ci_high": float(result.high),
        "ess": float(result.ess),
        # None, not NaN: a stored NaN never equals itself, so resumed trials would differ
        "events": float(result.events) if math.isfinite(result.events) else None,
    }
    attrs.update({f"metric:{k}": float(v) for k, v in result.metrics.items()})
    attrs.update(result.attrs)
    return build_trial(space, x, [value], attrs, result.infeasible, start)


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


def _add_trials(study: optuna.Study, trials: Sequence[FrozenTrial]) -> None:
    """Write ``trials`` into ``study`` in one transaction (:mod:`tuner._trial_writer`).

    A study not in an RDB, or whose ``add_trial`` was replaced on the instance (a wrapper,
    a test double), gets them one ``add_trial`` at a time instead.
    """
    storage = getattr(study, "_storage", None)
    rdb = getattr(storage, "_backend", storage)  # Optuna wraps an RDBStorage in a cache
    if not isinstance(rdb, RDBStorage) or "add_trial" in vars(study):
        for trial in trials:
            study.add_trial(trial)
        return
    add_trials(rdb, rdb.get_study_id_from_name(study.study_name), trials)


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


def _round_record(study_name: str, s: RoundSummary) -> RoundRecord:
    return RoundRecord(study_name, s.round, s.n_trials, s.best_value, s.best_low, s.best_high,
                       s.best_trial, s.mean, s.sigma, datetime.now(UTC))


def _record(store: ProjectStore, study_name: str, s: RoundSummary) -> None:
    store.record_round(_round_record(study_name, s))


def _record_once(
    store: ProjectStore, study_name: str, g: int, members: Sequence[FrozenTrial], cem: CEM
) -> bool:
    """Record round ``g`` (told next to ``cem``) unless recorded; True if this call did."""
    s = _summary(g, members, cem.state, cem.space)
    return store.record_round_once(_round_record(study_name, s))


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


# --- stored settings ------------------------------------------------------------------------


def _read_attrs(
    study: optuna.Study,
) -> tuple[FusionSpace, CEMConfig, int, dict[str, Any], list[float]]:
    attrs = study.user_attrs
    missing = [k for k in (ATTR_SPACE, ATTR_CONFIG, ATTR_SEED) if k not in attrs]
    if missing:
        raise ValueError(
            f"study {study.study_name!r} lacks user attrs {missing}; it was not created by "
            "fusiontune (create_or_load_study)"
        )
    space = FusionSpace.from_dict(attrs[ATTR_SPACE])
    config = CEMConfig(**attrs[ATTR_CONFIG])
    seed = int(attrs[ATTR_SEED])
    init = attrs.get(ATTR_INIT_MEAN)
    if init is None:
        init = CEM(space, config, seed).init_mean.tolist()
    return space, config, seed, dict(attrs.get(ATTR_SETTINGS, {})), list(init)


def _stored_init_mean(study: optuna.Study) -> np.ndarray | None:
    init = study.user_attrs.get(ATTR_INIT_MEAN)
    return None if init is None else np.asarray(init, dtype=np.float64)


def _check_same(study_name: str, setting: str, stored: Any, given: Any) -> None:
    if given is not None and given != stored:
        raise ValueError(
            f"study {study_name!r} was created with {setting} {stored}, not {given}; "
            f"omit {setting} to use the stored one, or start a new study name"
        )


def _json_roundtrip(value: Mapping[str, Any], what: str) -> dict[str, Any]:
    try:
        return dict(json.loads(json.dumps(dict(value), allow_nan=False)))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what} must be JSON-able (finite numbers): {err}") from err


def jsonable(x: Any) -> Any:
    """``x`` with numpy scalars made plain and non-finite floats made ``None`` (for JSON)."""
    if isinstance(x, Mapping):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [jsonable(v) for v in x]
    if isinstance(x, float | np.floating):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def _iso(d: datetime | None) -> str | None:
    return None if d is None else d.isoformat()
