"""``search ask|tell``: CEM rounds over live A/B groups (their part of ``search history`` is
:func:`tuner.cli._history.history_live`).

``search ask`` creates the study on its first call, from the options ``search run`` takes
(``--groups`` is its population), and writes the next round's groups as JSON and CSV for
an experiment platform; ``search tell`` reads the platform's per-group results (see
:func:`read_results`) and refuses a whole file, writing nothing, at its first bad value.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click
import numpy as np

from tuner.cli._common import (
    STORAGE,
    STUDY,
    dump,
    load_existing,
    stage,
    storage_url,
    study_names,
    user_errors,
)
from tuner.cli._format import table
from tuner.cli._new_study import NewStudy, given_options
from tuner.cli._study_options import study_data_options
from tuner.study import SearchSpec, create_or_load_study, load_search, read_spec
from tuner.study._live import LiveRound, ask_round, pending_round, tell_results
from tuner.study._live_rounds import OBJECTIVE_METRIC, SCREEN_ESTIMATOR, GroupResult

__all__ = ["read_results", "search_ask", "search_tell"]

UNIT_COLUMNS = ("users", "requests")


@click.command("ask")
@STORAGE
@STUDY
@click.option("--groups", type=click.IntRange(min=2), default=None,
              help="Experiment groups per round (the CEM population; new study, default 8).")
@click.option("--prescreen", type=click.IntRange(min=0), default=0, show_default=True,
              help="Draw this many candidates, estimate them on the logs in one pass and "
                   "send the best of each of --groups random blocks (0: CEM's own draws).")
@click.option("--screened", type=click.IntRange(min=0), default=None,
              help="With --prescreen: how many groups are their block's best offline; the "
                   "others are CEM's plain draws, so a biased proxy cannot hold the search "
                   "[default: half of --groups].")
@click.option("--screen-estimator", default=None, metavar="NAME",
              help="With --prescreen: the offline estimator that screens the draws and values "
                   f"the round's groups [default: {SCREEN_ESTIMATOR}, the best-ordering "
                   "estimate measured, or the study's --estimator where the score table "
                   "lacks a label task].")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="JSON file of the round's groups; a CSV of the same name beside it "
                   "[default: <study>-round<N>.json].")
@study_data_options
@click.option("--estimator-param", "estimator_param_text", multiple=True,
              help="Hyperparameter of --estimator, <name>=<number> (new study).")
@click.option("--objective", "objective_text", help="<task>=<weight>,... (new study).")
@click.option("--control", "control_text", help="Production weights <task>=<weight>,...: "
              "the control group of every round and CEM's start (default all 1).")
@click.option("--guardrail", "guardrail_text",
              help="Offline guardrails for pre-screening, e.g. click=0.05 (new study).")
@click.option("--examination", "examination_text", help="Slot examination curve (CSV logs).")
@click.option("--elite-fraction", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Share of the groups kept as elites (default 0.25).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the round as JSON.")
@click.pass_context
@user_errors
def search_ask(ctx: click.Context, storage: str, study_name: str, groups: int | None,
               prescreen: int, screened: int | None, screen_estimator: str | None,
               out: Path | None, as_json: bool, **study: Any) -> None:
    """Write the next live round's groups (and the control) for an experiment platform.

    Asking again before the round is told returns the same groups. A new
    study needs --logs, --scores and --objective, like 'search run'.
    """
    if screened is not None and not prescreen:
        raise ValueError(f"--screened {screened} chooses among pre-screened draws; give "
                         "--prescreen N too, or drop --screened")
    if screen_estimator is not None and not prescreen:
        raise ValueError(f"--screen-estimator {screen_estimator} estimates pre-screened draws; "
                         "give --prescreen N too, or drop --screen-estimator")
    if screen_estimator is not None:
        from simulator.estimators import ESTIMATORS

        if screen_estimator not in ESTIMATORS:
            raise ValueError(f"--screen-estimator {screen_estimator!r} is unknown; valid: "
                             f"{', '.join(sorted(ESTIMATORS))}")
    url = storage_url(storage)
    given = [g for g in given_options(ctx) if g != "population"]
    options = NewStudy.from_params({**study, "population": groups or 8})
    if study_name in study_names(url):
        study_, search_ = load_search(url, study_name)
        options.check_against(given, search_)
        if groups is not None and groups != search_.population:
            raise ValueError(f"--groups {groups} conflicts with the study's {search_.population} "
                             "groups a round; omit --groups")
    else:
        if options.missing():
            raise ValueError(f"study {study_name!r} does not exist in {url}; to create it "
                             f"give {' '.join(options.missing())}")
        with stage(f"reading and checking {options.logs} and {options.scores}"):
            settings, space, _ = options.build()
        init = np.asarray(settings.control) if settings.control is not None else None
        study_ = create_or_load_study(url, study_name, space, options.strategy_config(),
                                      options.seed, settings=settings.to_dict(),
                                      init_mean=None if init is None else space.from_weights(init))
        search_ = read_spec(study_)
    # a round already asked is returned as stored: no need to read the logs again
    offline, used = (_offline_objective(search_, prescreen, screen_estimator)
                     if pending_round(study_) is None else (None, None))
    if screened is not None and screened > search_.population:
        raise ValueError(f"--screened {screened} is above the study's {search_.population} "
                         f"groups a round; give 0 to {search_.population}")
    round_ = ask_round(study_, search_, prescreen, offline, screened, used)
    if round_.reused:
        click.echo(f"round {round_.round} is waiting for results; these are its groups "
                   "(asked before)", err=True)
    out = out if out is not None else Path(f"{study_name}-round{round_.round}.json")
    _write_round(round_, out)
    click.echo(f"wrote {out} and {out.with_suffix('.csv')}", err=True)
    if as_json:
        dump(round_.to_dict())
        return
    tasks = list(round_.groups[0].weights)
    click.echo(table(["group", *tasks, "offline lift"],
                     [[g.group, *[g.weights[t] for t in tasks],
                       _num(g.offline.get("lift")) if g.offline else ""]
                      for g in round_.groups]))


def _num(x: Any) -> float:
    return math.nan if x is None else float(x)


def _offline_objective(search: SearchSpec, prescreen: int, screen_estimator: str | None
                       ) -> tuple[Any, str | None]:
    """The replay objective on the study's search split, and the estimator's name, or
    ``(None, None)`` for a study without logs. A pre-screened round is estimated by
    ``screen_estimator`` (default :data:`SCREEN_ESTIMATOR`, the study's own where the score
    table lacks a label task it needs), any other by the study's estimator."""
    from simulator.estimators import make_estimator
    from tuner.evaluation.objective import FusionObjective
    from tuner.evaluation.search_data import SearchSettings, Workspace, unscored_tasks

    if not search.settings.get("logs"):
        return None, None
    own = str(search.settings.get("estimator", "snips"))
    with stage("reading the study's logs and scores"):
        ws = Workspace(SearchSettings.from_dict(search.settings))
    name = (screen_estimator or SCREEN_ESTIMATOR) if prescreen else own
    if name == own:
        return FusionObjective.for_workspace(ws), own
    missing = unscored_tasks(ws)
    if missing and screen_estimator is None:
        click.echo(f"pre-screening with the study's estimator {own!r}: {SCREEN_ESTIMATOR} "
                   f"needs a score for every label task and the score table lacks {missing}",
                   err=True)
        return FusionObjective.for_workspace(ws), own
    return FusionObjective.for_workspace(ws, estimator=make_estimator(name, {})), name


def _write_round(round_: LiveRound, out: Path) -> None:
    """The round as JSON at ``out`` and as CSV beside it (group, control, formula, one
    column per task)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(round_.to_dict(), indent=2) + "\n")
    tasks = list(round_.groups[0].weights)
    with out.with_suffix(".csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["group", "control", "formula", *tasks])
        for g in round_.groups:
            w.writerow([g.group, int(g.member is None), round_.formula,
                        *[repr(g.weights[t]) for t in tasks]])


@click.command("tell")
@STORAGE
@STUDY
@click.option("--results", "results_path", required=True,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="CSV (or JSON list of rows): group, users (or requests), and per metric "
                   "<m>_mean and <m>_se, or <m>_sum and <m>_sumsq.")
@user_errors
def search_tell(storage: str, study_name: str, results_path: Path) -> None:
    """Tell the study the online results of some (or all) groups of its live round."""
    url = storage_url(storage)
    study_, search_ = load_existing(url, study_name)
    metrics = list(dict(search_.settings.get("objective") or {}))
    results = read_results(results_path, metrics)
    report = tell_results(study_, search_, results, str(results_path))
    click.echo(f"told {len(report.told)} groups: {', '.join(report.told)}")
    for g in report.completed:
        summary = study_.user_attrs.get(f"fusiontune:live_summary:{g}", {})
        click.echo(f"round {g} complete: elites {', '.join(summary.get('elites', []))} "
                   f"(best {summary.get('best')})")


def _rows(path: Path) -> list[dict[str, str]]:
    if path.suffix.lower() == ".json":
        data = json.loads(path.read_text())
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise ValueError(f"{path}: a JSON results file is a list of objects, one a group")
        return [{str(k): "" if v is None else str(v) for k, v in r.items()} for r in data]
    with path.open(newline="") as f:
        return [dict(r) for r in csv.DictReader(f)]


def read_results(path: Path, metrics: Sequence[str]) -> dict[str, GroupResult]:
    """The groups' results in ``path``, every value checked; group id -> result.

    Columns: ``group``; ``users`` (or ``requests``), an integer >= 1; and for every metric
    of ``metrics`` (the study's objective tasks; or ``objective`` itself) either
    ``<m>_mean`` and ``<m>_se`` or ``<m>_sum`` and ``<m>_sumsq``. Other ``<m>_mean``
    columns are read as extra metrics.

    Raises:
        ValueError: one line naming the file, row, group and column: a missing column or
            cell, a non-number or non-finite value, a negative standard error, a standard
            error of zero with more than one unit, a group given twice, or no rows.
    """
    rows = _rows(path)
    if not rows:
        raise ValueError(f"{path}: no result rows")
    cols = set(rows[0])
    if "group" not in cols:
        raise ValueError(f"{path}: no column 'group'")
    unit_col = next((c for c in UNIT_COLUMNS if c in cols), None)
    if unit_col is None:
        raise ValueError(f"{path}: no column 'users' (or 'requests'): the units exposed")
    needed = [OBJECTIVE_METRIC] if f"{OBJECTIVE_METRIC}_mean" in cols else list(metrics)
    extra = sorted(c[:-5] for c in cols if c.endswith("_mean") and c[:-5] not in needed)
    forms: dict[str, tuple[str, str]] = {}
    for m in [*needed, *extra]:
        form = next(((a, b) for a, b in ((f"{m}_mean", f"{m}_se"), (f"{m}_sum", f"{m}_sumsq"))
                     if a in cols and b in cols), None)
        if form is None:
            if m in extra:
                continue
            raise ValueError(f"{path}: metric {m!r} is missing: give columns {m}_mean and "
                             f"{m}_se (or {m}_sum and {m}_sumsq)")
        forms[m] = form
    out: dict[str, GroupResult] = {}
    for i, row in enumerate(rows, start=2):  # the header is line 1
        gid = (row.get("group") or "").strip()
        where = f"{path} row {i} (group {gid!r})"
        if not gid:
            raise ValueError(f"{path} row {i}: column group is empty")
        if gid in out:
            raise ValueError(f"{where}: the group is told twice in this file")
        units_f = _number(row, unit_col, where)
        if units_f < 1 or units_f != int(units_f):
            raise ValueError(f"{where}, column {unit_col}: {row[unit_col]!r} is not a whole "
                             "number >= 1")
        units = int(units_f)
        mean, se = {}, {}
        for m, (a, b) in forms.items():
            x, y = _number(row, a, where), _number(row, b, where)
            if a.endswith("_sum"):
                r = GroupResult.from_sums(units, {m: x}, {m: y})
                x, y = r.mean[m], r.se[m]
            if y < 0:
                raise ValueError(f"{where}, column {b}: a standard error cannot be negative")
            if y == 0 and units > 1:
                raise ValueError(f"{where}, column {b}: a standard error of 0 with {units} "
                                 f"{unit_col} means no variation at all; check the export")
            mean[m], se[m] = x, y
        out[gid] = GroupResult(units, mean, se)
    return out


def _number(row: Mapping[str, str | None], col: str, where: str) -> float:
    text = (row.get(col) or "").strip()
    if not text:
        raise ValueError(f"{where}, column {col}: empty")
    try:
        x = float(text)
    except ValueError:
        raise ValueError(f"{where}, column {col}: {text!r} is not a number") from None
    if not math.isfinite(x):
        raise ValueError(f"{where}, column {col}: {text} is not a finite number")
    return x
