"""CEM rounds over live A/B groups, stored in the study like offline rounds.

``ask`` draws round ``g`` from the strategy replayed out of the stored trials (optionally
pre-screening many draws on the logs, :func:`~tuner.study._live_rounds.select_groups`) and
records it: the study user attr ``fusiontune:live:<g>`` (groups, weights, formula, control)
and one WAITING trial per group (user attrs ``round``, ``member``, ``group``, ``live``,
``offline``) plus one for the control (no ``member``: it is never a CEM member). Asking again
before the round is told returns the same round. ``tell`` validates a whole results table
first and writes nothing when any row is bad; each told group becomes COMPLETE with its
online objective as value and user attr ``online``. Once every group and the control are
told, the round summary (lifts over the control, CEM's elites) is stored as
``fusiontune:live_summary:<g>`` and in the project's round table.

A told group is an ordinary CEM member (COMPLETE, ``round``/``member``), so the strategy
replays from the trials as for offline rounds, and ``search run`` may continue the study
offline (and ``ask`` online again). Offline rounds are refused while a live round waits.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState, create_trial

from tuner.storage import ProjectStore
from tuner.strategies import BaseStrategy
from tuner.study._attrs import SearchSpec, jsonable
from tuner.study._live_rounds import (
    Calibration,
    GroupResult,
    Lift,
    calibrate,
    default_screened,
    draw_candidates,
    lift,
    objective_of,
    select_groups,
)
from tuner.study._open import _STUDY_URLS
from tuner.study._round_records import record_round_once
from tuner.study._trials import TrialResult, _arrays, _generations, _members

__all__ = [
    "ATTR_LIVE",
    "ATTR_LIVE_SUMMARY",
    "LiveGroup",
    "LiveGroupRow",
    "LiveRound",
    "TellReport",
    "ask_round",
    "check_no_open_live_round",
    "pending_round",
    "live_groups_table",
    "live_rounds",
    "tell_results",
]

ATTR_LIVE = "fusiontune:live:"
"""Prefix of the study user attr of each live round: ``fusiontune:live:<round>``."""
ATTR_LIVE_SUMMARY = "fusiontune:live_summary:"
"""Prefix of the summary of each fully told live round."""

Evaluate = Callable[[np.ndarray], Sequence[TrialResult]]
"""The offline objective, as :func:`~tuner.study.run_rounds` takes it."""


@dataclass(frozen=True)
class LiveGroup:
    """One group of a live round.

    Args:
        group: its id, ``r<round>-g<member>`` or ``r<round>-control``.
        member: CEM member index, None for the control.
        weights: task -> weight, what the platform serves.
        offline: the offline estimate ``{"value", "low", "high", "lift"}`` (empty when the
            study has no logs to estimate on).
    """

    group: str
    member: int | None
    weights: dict[str, float]
    offline: dict[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class LiveRound:
    """A live round as asked: its groups (control last), formula and how they were chosen."""

    round: int
    groups: list[LiveGroup]
    formula: str
    prescreen: int
    selection: str
    reused: bool = False
    offline_estimator: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return jsonable({
            "round": self.round, "formula": self.formula, "prescreen": self.prescreen,
            "selection": self.selection, "offline_estimator": self.offline_estimator,
            "groups": [{"group": g.group, "control": g.member is None, "weights": g.weights,
                        "formula": self.formula, "offline": g.offline or None}
                       for g in self.groups]})


def _rdb(study: optuna.Study) -> RDBStorage:
    url = _STUDY_URLS.get(study)
    if url is None:
        raise ValueError(f"study {study.study_name!r} was not opened with "
                         "create_or_load_study; live rounds need its storage URL")
    return RDBStorage(url)


def _round_attrs(study: optuna.Study) -> dict[int, dict[str, Any]]:
    return {int(k[len(ATTR_LIVE):]): v for k, v in study.user_attrs.items()
            if k.startswith(ATTR_LIVE)}


def _live_trials(study: optuna.Study) -> dict[str, FrozenTrial]:
    out: dict[str, FrozenTrial] = {}
    for t in study.get_trials(deepcopy=False):
        gid = t.user_attrs.get("group")
        if gid is not None and t.state in (TrialState.WAITING, TrialState.COMPLETE):
            out.setdefault(str(gid), t)
    return out


def _open_round(study: optuna.Study) -> tuple[int, dict[str, Any]] | None:
    trials = _live_trials(study)
    for g, rec in sorted(_round_attrs(study).items()):
        ids = [*rec["groups"], rec["control"]]
        if any(i not in trials or trials[i].state != TrialState.COMPLETE for i in ids):
            return g, rec
    return None


def pending_round(study: optuna.Study) -> int | None:
    """The live round asked and not fully told yet, if any (``ask`` would return it)."""
    found = _open_round(study)
    return None if found is None else found[0]


def check_no_open_live_round(study: optuna.Study) -> None:
    """Refuse offline rounds while a live round waits for results.

    Raises:
        ValueError: naming the round, its untold groups and the command that tells them.
    """
    found = _open_round(study)
    if found is None:
        return
    g, rec = found
    trials = _live_trials(study)
    waiting = [i for i in [*rec["groups"], rec["control"]]
               if i not in trials or trials[i].state != TrialState.COMPLETE]
    raise ValueError(f"study {study.study_name!r} has live round {g} waiting for results of "
                     f"{', '.join(waiting)}; tell them with 'fusiontune search tell' before "
                     "running more rounds")


def _weights(search: SearchSpec, x: np.ndarray) -> dict[str, float]:
    w = search.space.matrix_to_weights(np.asarray(x, dtype=np.float64)[None])[0]
    return {t: float(v) for t, v in zip(search.space.tasks, w, strict=True)}


def _control_weights(search: SearchSpec) -> np.ndarray:
    control = search.settings.get("control")
    if control is None:
        return np.ones(len(search.space.tasks))
    return np.asarray(control, dtype=np.float64)


def ask_round(study: optuna.Study, search: SearchSpec, prescreen: int = 0,
              offline: Evaluate | None = None, screened: int | None = None,
              estimator: str | None = None) -> LiveRound:
    """The next live round of ``study``, recorded as WAITING trials; idempotent.

    If a live round is asked and not fully told, that round is returned (its missing
    trials, after a crash during an ask, are written again) and ``prescreen`` is ignored.

    Args:
        study: the study, opened with :func:`~tuner.study.create_or_load_study`.
        search: its spec; the strategy's population is the number of groups.
        prescreen: draw this many candidates and send the tournament winners
            (:func:`~tuner.study._live_rounds.select_groups`); 0: the strategy's own ask.
        offline: the offline objective ``W [P, T] -> P`` results (``search run``'s); with it
            every group (and the control) gets an offline estimate. Needed for
            ``prescreen``.
        screened: with ``prescreen``, how many of the groups are their block's best by
            offline estimate; the others are the blocks' first draws, CEM's plain samples
            (default :func:`~tuner.study._live_rounds.default_screened`: half).
        estimator: the name of the estimator behind ``offline`` (recorded with the round;
            default: the study's).

    Raises:
        ValueError: an offline round is half done, ``prescreen`` without ``offline`` or
            below the number of groups, or with a strategy other than CEM.
    """
    found = _open_round(study)
    if found is not None:
        g, rec = found
        _write_missing(study, search, g, rec)
        return _as_round(g, rec, reused=True)
    m = search.population
    gens = _generations(_members(study), m)
    if gens and not gens[-1][2]:
        g_half, members, _ = gens[-1]
        raise ValueError(f"round {g_half} of study {study.study_name!r} has {len(members)} of "
                         f"{m} members from an offline run; finish it with 'fusiontune search "
                         "run' before asking a live round")
    g = len(gens)
    if prescreen and offline is None:
        raise ValueError("--prescreen needs the study's logs and scores to estimate the "
                         "candidates on")
    strategy = _strategy_before(study, search, g)
    n = max(prescreen, m) if prescreen else m
    X = draw_candidates(strategy, search.space, g, n)
    control = _control_weights(search)
    estimates: list[TrialResult] = []
    if offline is not None:
        W = np.vstack([control[None, :], search.space.matrix_to_weights(X)])
        estimates = list(offline(W))
    if prescreen:
        screened = default_screened(m) if screened is None else screened
        values = np.array([r.value for r in estimates[1:]])
        feasible = np.array([not r.infeasible for r in estimates[1:]])
        chosen = select_groups(values, feasible, m, screened)
    else:
        chosen, screened = np.arange(m), 0
    rec = _record(search, g, X, chosen, control, estimates, prescreen, screened)
    if estimates:
        rec["offline_estimator"] = estimator or str(search.settings.get("estimator", "snips"))
    study.set_user_attr(f"{ATTR_LIVE}{g}", rec)
    _write_missing(study, search, g, rec)
    return _as_round(g, rec)


def _offline(r: TrialResult, control: TrialResult | None) -> dict[str, float | None]:
    base = control.value if control is not None else math.nan
    lift_ = r.value / base - 1 if math.isfinite(base) and base != 0 else math.nan
    return jsonable({"value": r.value, "low": r.low, "high": r.high, "lift": lift_,
                     "infeasible": r.infeasible or None})  # type: ignore[no-any-return]


def _record(search: SearchSpec, g: int, X: np.ndarray, chosen: np.ndarray,
            control: np.ndarray, estimates: Sequence[TrialResult],
            prescreen: int, screened: int) -> dict[str, Any]:
    space = search.space
    ctl = estimates[0] if estimates else None
    groups = [f"r{g}-g{m}" for m in range(len(chosen))]
    rec: dict[str, Any] = {
        "round": g, "groups": groups, "control": f"r{g}-control",
        "formula": search.settings.get("formula", "multiplicative"),
        "prescreen": int(prescreen),
        "selection": (f"tournament: {screened} of {len(chosen)} groups the best of their "
                      "block, the others plain draws") if prescreen else "strategy ask",
        "screened": int(screened),
        "x": {gid: [float(v) for v in X[i]] for gid, i in zip(groups, chosen, strict=True)},
        "weights": {gid: _weights(search, X[i]) for gid, i in zip(groups, chosen, strict=True)},
        "offline": {},
    }
    rec["weights"][rec["control"]] = dict(zip(space.tasks, map(float, control), strict=True))
    if estimates:
        rec["offline"] = {gid: _offline(estimates[1 + int(i)], ctl)
                          for gid, i in zip(groups, chosen, strict=True)}
        rec["offline"][rec["control"]] = _offline(estimates[0], ctl)
        if prescreen:
            vals = np.array([r.value for r in estimates[1:]], dtype=np.float64)
            rec["prescreen_best"] = jsonable(float(np.nanmax(vals)) if np.isfinite(vals).any()
                                             else math.nan)
    return jsonable(rec)  # type: ignore[no-any-return]


def _as_round(g: int, rec: Mapping[str, Any], reused: bool = False) -> LiveRound:
    ids = [*rec["groups"], rec["control"]]
    groups = [LiveGroup(i, m if m < len(rec["groups"]) else None, dict(rec["weights"][i]),
                        dict(rec["offline"].get(i, {})))
              for m, i in enumerate(ids)]
    return LiveRound(g, groups, str(rec["formula"]), int(rec["prescreen"]),
                     str(rec["selection"]), reused, rec.get("offline_estimator"))


def _strategy_before(study: optuna.Study, search: SearchSpec, g: int) -> BaseStrategy:
    """The strategy told every complete generation before ``g``."""
    strategy = search.build()
    for gen, members, complete in _generations(_members(study), search.population):
        if gen >= g or not complete:
            break
        strategy.ask(gen)
        strategy.tell(gen, *_arrays(search.space, members))
    return strategy


def _write_missing(study: optuna.Study, search: SearchSpec, g: int,
                   rec: Mapping[str, Any]) -> None:
    """Write the WAITING trials of round ``g`` that are not in the study yet."""
    have = _live_trials(study)
    space = search.space
    for m, gid in enumerate([*rec["groups"], rec["control"]]):
        if gid in have:
            continue
        is_control = gid == rec["control"]
        x = (space.from_weights(np.array(list(rec["weights"][gid].values())))
             if is_control else np.asarray(rec["x"][gid]))
        attrs: dict[str, Any] = {"round": g, "group": gid,
                                 "live": "control" if is_control else "group",
                                 "weights": rec["weights"][gid]}
        if not is_control:
            attrs["member"] = m
        if gid in rec["offline"]:
            attrs["offline"] = rec["offline"][gid]
        inside = space.contains(x)
        study.add_trial(create_trial(
            state=TrialState.WAITING,
            params=space.to_params(x) if inside else None,
            distributions=dict(space.distributions()) if inside else None,
            user_attrs=attrs))


@dataclass(frozen=True)
class TellReport:
    """What one ``tell`` wrote: the groups told, and the rounds it completed."""

    told: list[str]
    completed: list[int]


def tell_results(study: optuna.Study, search: SearchSpec, results: Mapping[str, GroupResult],
                 source: str = "results", store: ProjectStore | None = None) -> TellReport:
    """Write the online results of some groups of the study's live rounds.

    Every result is checked before anything is written: an unknown group, a group already
    told, a result lacking an objective metric, a non-finite value, a negative standard
    error or one of zero with more than one unit refuses the whole call.

    Raises:
        ValueError: one line naming ``source``, the group and what is wrong.
    """
    objective = dict(search.settings.get("objective") or {})
    rounds = _round_attrs(study)
    owner = {gid: g for g, rec in rounds.items() for gid in [*rec["groups"], rec["control"]]}
    trials = _live_trials(study)
    for gid, res in results.items():
        if gid not in owner:
            open_ = _open_round(study)
            hint = (f"round {open_[0]} has groups {', '.join(open_[1]['groups'])} and "
                    f"{open_[1]['control']}" if open_ else "no live round is open")
            raise ValueError(f"{source}: group {gid!r} is not a group of study "
                             f"{study.study_name!r} ({hint})")
        t = trials.get(gid)
        if t is None:
            raise ValueError(f"{source}: group {gid!r} has no trial (interrupted ask?); run "
                             "'fusiontune search ask' again, then tell")
        if t.state == TrialState.COMPLETE:
            raise ValueError(f"{source}: group {gid!r} was already told (trial {t.number}); "
                             "a group is told once")
        for metric in objective:
            if metric not in res.mean and "objective" not in res.mean:
                raise ValueError(f"{source}: group {gid!r} lacks metric {metric!r} (columns "
                                 f"{metric}_mean and {metric}_se)")
        _check_values(source, gid, res)
    rdb = _rdb(study)
    for gid, res in results.items():
        value, se = objective_of(res, objective)
        t = trials[gid]
        z = 1.959963984540054
        tid = t._trial_id  # Optuna has no public handle on a trial by id other than this
        rdb.set_trial_user_attr(tid, "online", jsonable({**res.to_dict(), "value": value,
                                                         "se": se}))
        rdb.set_trial_user_attr(tid, "ci_low", value - z * se)
        rdb.set_trial_user_attr(tid, "ci_high", value + z * se)
        rdb.set_trial_state_values(tid, TrialState.COMPLETE, [value])
    completed = _summarise_complete(study, search, store)
    return TellReport(sorted(results), completed)


def _check_values(source: str, gid: str, res: GroupResult) -> None:
    """The checks :func:`tuner.cli._live.read_results` makes of a file, for results built in
    code."""
    if res.units < 1:
        raise ValueError(f"{source}: group {gid!r} has {res.units} units; need >= 1")
    for m, x in res.mean.items():
        se = res.se.get(m, math.nan)
        if not (math.isfinite(x) and math.isfinite(se)):
            raise ValueError(f"{source}: group {gid!r}, metric {m!r}: mean {x} and se {se} "
                             "must be finite numbers")
        if se < 0 or (se == 0 and res.units > 1):
            raise ValueError(f"{source}: group {gid!r}, metric {m!r}: a standard error of "
                             f"{se} with {res.units} units")


def _summarise_complete(study: optuna.Study, search: SearchSpec,
                        store: ProjectStore | None) -> list[int]:
    """Store the summary of every live round now fully told and not yet summarised."""
    trials = _live_trials(study)
    done = []
    for g, rec in sorted(_round_attrs(study).items()):
        key = f"{ATTR_LIVE_SUMMARY}{g}"
        ids = [*rec["groups"], rec["control"]]
        if key in study.user_attrs or any(
                i not in trials or trials[i].state != TrialState.COMPLETE for i in ids):
            continue
        summary = _live_summary(search, rec, trials)
        study.set_user_attr(key, summary)
        done.append(g)
        members = [trials[i] for i in rec["groups"]]
        url = _STUDY_URLS.get(study)
        st = store if store is not None else (ProjectStore(url) if url else None)
        if st is not None:
            try:
                record_round_once(st, study.study_name, g, members,
                                  _strategy_before(study, search, g), search.space)
            finally:
                if store is None:
                    st.close()
    return done


def _online(t: FrozenTrial) -> tuple[float, float]:
    o = t.user_attrs.get("online") or {}
    return float(o.get("value", math.nan)), float(o.get("se", math.nan))


def _live_summary(search: SearchSpec, rec: Mapping[str, Any],
                  trials: Mapping[str, FrozenTrial]) -> dict[str, Any]:
    cv, cse = _online(trials[rec["control"]])
    lifts = {gid: lift(*_online(trials[gid]), cv, cse) for gid in rec["groups"]}
    elite_count = getattr(search.config, "elite_count", None)
    n_elite = (elite_count(len(rec["groups"])) if elite_count is not None
               else max(1, math.ceil(0.25 * len(rec["groups"]))))
    keyed = sorted(rec["groups"], key=lambda i: -lifts[i].value
                   if math.isfinite(lifts[i].value) else math.inf)
    return jsonable({
        "round": rec["round"], "control": {"value": cv, "se": cse},
        "lifts": {gid: {"value": x.value, "se": x.se, "low": x.low, "high": x.high}
                  for gid, x in lifts.items()},
        "elites": keyed[:n_elite], "best": keyed[0],
    })  # type: ignore[no-any-return]


@dataclass(frozen=True)
class LiveGroupRow:
    """One told or waiting group in ``search history``."""

    round: int
    group: str
    state: str
    units: int | None
    online: Lift | None
    offline_lift: float
    elite: bool


def live_groups_table(study: optuna.Study) -> list[LiveGroupRow]:
    """Every live group (controls left out), by round: online lift beside offline lift."""
    trials = _live_trials(study)
    rows = []
    for g, rec in sorted(_round_attrs(study).items()):
        ctl = trials.get(rec["control"])
        told_ctl = ctl is not None and ctl.state == TrialState.COMPLETE
        summary = study.user_attrs.get(f"{ATTR_LIVE_SUMMARY}{g}", {})
        for gid in rec["groups"]:
            t = trials.get(gid)
            told = t is not None and t.state == TrialState.COMPLETE
            online = (lift(*_online(t), *_online(ctl))  # type: ignore[arg-type]
                      if told and told_ctl else None)
            off = rec["offline"].get(gid, {}).get("lift")
            units = (t.user_attrs.get("online") or {}).get("units") if told else None  # type: ignore[union-attr]
            rows.append(LiveGroupRow(g, gid, "told" if told else "waiting", units, online,
                                     math.nan if off is None else float(off),
                                     gid in summary.get("elites", [])))
    return rows


def live_rounds(study: optuna.Study) -> tuple[list[LiveGroupRow], Calibration]:
    """The live groups table and the proxy's calibration over every told group."""
    rows = live_groups_table(study)
    told = [r for r in rows if r.online is not None]
    cal = calibrate([r.offline_lift for r in told],
                    [r.online.value for r in told if r.online is not None],
                    [r.round for r in told])
    return rows, cal
