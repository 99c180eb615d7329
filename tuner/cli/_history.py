"""``search history``: the rounds (or trials) of a study, read from a snapshot of its rows.

A command that starts in well under a second (README, "Start-up"), so this module imports
only what reading needs: the study is a read-only snapshot
(:func:`tuner.study.read_search`, SQLAlchemy Core, no ORM and no Optuna storage), and the
live rounds' module (:mod:`tuner.study._live`, which writes) is imported only for a study
that has live rounds; ``--plot`` imports matplotlib and the replay.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
import numpy as np
import optuna

from tuner.cli._common import STORAGE, STUDY, dump, load_existing, storage_url, user_errors
from tuner.cli._format import loss_trial_columns, rounds_table, table
from tuner.evaluation.loss_study import is_loss_study
from tuner.study import (
    ConvergenceRule,
    SearchSpec,
    completed_rounds,
    history,
    jsonable,
    trials_table,
)

__all__ = ["history_live", "live_text", "search_history"]


@click.command("history")
@STORAGE
@STUDY
@click.option("--trials", "show_trials", is_flag=True, help="List every trial, not rounds.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--plot", "plot_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also write objective.png and weights.png (per round) into this folder.")
@click.option("--patience", type=click.IntRange(min=1), default=3, show_default=True,
              help="Of the convergence rule whose stopping round is marked (see search run "
                   "--until converged).")
@click.option("--order", type=click.Choice(("estimate", "gated_dr")), default="estimate",
              show_default=True, help="gated_dr: also rank the strategy's pick after each "
              "round by gated_dr pooled over those picks on the search split (an ordering "
              "score that does not share the noise the search climbed; reads the log, so "
              "not the default of a command that starts in well under a second).")
@user_errors
def search_history(storage: str, study_name: str, show_trials: bool, as_json: bool,
                   plot_dir: Path | None, patience: int = 3, order: str = "estimate") -> None:
    """Show the rounds (or trials) of a study; --plot draws them."""
    study, search_ = load_existing(storage_url(storage), study_name, read_only=True)
    space, raw = search_.space, search_.settings
    if order == "gated_dr" and (show_trials or is_loss_study(raw)):
        raise ValueError("--order gated_dr ranks the rounds' picks of a fusion study; it "
                         "takes no --trials and no loss-weight study")
    if plot_dir is not None:
        from tuner.plots import pick_estimates, plot_history

        rounds_ = history(study, search_)
        picks = None if is_loss_study(raw) or not rounds_ else pick_estimates(raw, rounds_, space)
        paths = plot_history(rounds_, plot_dir, study_name, space.prefix, space, picks)
        if is_loss_study(raw):
            from tuner.plots import plot_loss_trials

            paths.append(plot_loss_trials(trials_table(study), plot_dir, study_name))
        for path in paths:
            click.echo(f"wrote {path}", err=True)
    if show_trials:
        rows = trials_table(study)
        if as_json:
            dump(rows)
            return
        if is_loss_study(raw):
            click.echo(table(*loss_trial_columns(rows)))
            return
        keys = ["number", "state", "round", "member", "value", "ci_low", "ci_high", "events"]
        click.echo(table([*keys, *space.param_names],
                         [[r.get(k, "") if r.get(k) is not None else "" for k in keys]
                          + [r.get("params", {}).get(p, "") for p in space.param_names]
                          for r in rows]))
        return
    rounds = history(study, search_)
    live = history_live(study)  # a study with live rounds: their groups and calibration
    ranked = _ranked_picks(study, search_) if order == "gated_dr" else None
    if as_json:
        rows = [r.to_dict() for r in rounds]
        for row, score in zip(rows, [] if ranked is None else ranked, strict=False):
            row["pick_gated_dr"] = jsonable(float(score))
        dump(rows if live is None else {"rounds": rows, **live})
        return
    if not rounds:
        click.echo(f"study {study_name!r} has no trials yet")
        return
    click.echo(rounds_table(rounds, space.prefix))
    if ranked is not None:
        click.echo(_ranked_text(ranked))
    if live is not None:
        click.echo(live_text(live))
    done = completed_rounds(study, search_.population)
    stop = ConvergenceRule(patience).stop(rounds[:done])
    click.echo(f"search run --until converged --patience {patience} would " + (
        f"stop after round {stop.round}: {stop.reason()}" if stop is not None
        else "not have stopped yet"))


def _ranked_picks(study: optuna.Study, search: SearchSpec) -> np.ndarray:
    """``[G]`` gated_dr of the pick after each completed round (the log is read here)."""
    from tuner.evaluation.search_data import SearchSettings
    from tuner.evaluation.streamed import open_workspace
    from tuner.picks.picking import round_pick_scores

    ws = open_workspace(SearchSettings.from_dict(search.settings))
    return round_pick_scores(ws, study, search)


def _ranked_text(scores: np.ndarray) -> str:
    """The rounds' picks by gated_dr, the first marked, and what the numbers are."""
    first = int(np.argmax(scores))
    rows = [[g + 1, f"{s:.4f}", "*" if g == first else ""] for g, s in enumerate(scores)]
    return (table(["after round", "pick's gated_dr (search split)", "first"], rows)
            + f"\nRanked by gated_dr on the search split, the pick after round {first + 1} "
              "is first: an ordering score pooled over these picks, without a metric's "
              "units or interval ('search export --validated' chooses this way among the "
              "picks after rounds 1, 2, 4, ... and the last).")


def history_live(study: optuna.Study) -> dict[str, Any] | None:
    """The live part of ``search history``: every group's online lift beside its offline
    estimate, and the proxy's calibration; None for a study without live rounds."""
    if not any(k.startswith("fusiontune:live:") for k in study.user_attrs):
        return None
    from tuner.study import live_rounds  # only here: the module that runs live rounds

    rows, cal = live_rounds(study)
    return {
        "groups": [{"round": r.round, "group": r.group, "state": r.state, "units": r.units,
                    "online_lift": None if r.online is None else r.online.value,
                    "online_low": None if r.online is None else r.online.low,
                    "online_high": None if r.online is None else r.online.high,
                    "offline_lift": r.offline_lift, "elite": r.elite} for r in rows],
        "calibration": {**cal.to_dict(), "verdict": cal.verdict()},
    }


def live_text(live: Mapping[str, Any]) -> str:
    """``history_live`` for the terminal: a table of groups, then the calibration."""
    rows = [[g["round"], g["group"], g["state"], g["units"] or "",
             _pct(g["online_lift"]),
             "" if g["online_lift"] is None else
             f"[{_pct(g['online_low'])}, {_pct(g['online_high'])}]",
             _pct(g["offline_lift"]), "*" if g["elite"] else ""] for g in live["groups"]]
    c = live["calibration"]
    lines = [table(["round", "group", "state", "units", "online lift", "95% interval",
                    "offline lift", "elite"], rows)]
    if c["n"] >= 3 and c["slope"] is not None and math.isfinite(c["slope"]):
        lines.append(f"proxy calibration over {c['n']} told groups: correlation "
                     f"{c['pearson']:.2f}, rank correlation {c['spearman']:.2f}; "
                     f"{c['verdict']}")
    else:
        lines.append(f"proxy calibration: {c['verdict']}")
    return "\n".join(lines)


def _pct(x: Any) -> str:
    return "" if x is None or not math.isfinite(float(x)) else f"{100 * float(x):+.2f}%"
