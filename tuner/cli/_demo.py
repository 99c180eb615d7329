"""``fusiontune demo``: the whole loop on an embedded world."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click
import numpy as np

from simulator.estimators import ESTIMATORS
from simulator.intervals import INTERVALS
from simulator.replay import OBJECTIVE
from tuner.cli._common import dump, user_errors
from tuner.cli._format import rounds_table
from tuner.cli._report_text import ab_events, ab_table, warn_few_events
from tuner.cli._track import MLFLOW, log_demo
from tuner.evaluation.guardrails import parse_guardrails
from tuner.evaluation.objective import parse_objective
from tuner.evaluation.search_data import parse_estimator_params

if TYPE_CHECKING:
    from tuner.demo import DemoConfig, Pick


@click.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("fusiontune-demo"), show_default=True,
              help="Folder for logs, scores, ranker, study and export (its demo files are "
                   "overwritten).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--requests", "n_requests", type=click.IntRange(min=1000), default=40_000,
              show_default=True, help="Requests the synthetic world logs.")
@click.option("--rounds", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--population", type=click.IntRange(min=4), default=32, show_default=True)
@click.option("--elite-fraction", type=click.FloatRange(0, 1, min_open=True), default=0.25,
              show_default=True)
@click.option("--estimator", default="snips", show_default=True,
              type=click.Choice(sorted(ESTIMATORS)))
@click.option("--estimator-param", "estimator_param_text", multiple=True,
              help="Hyperparameter of --estimator, <name>=<number> (repeatable or a comma "
                   "list), e.g. clip=50 for clipped_ips, tau=5 for switch.")
@click.option("--objective", "objective_text",
              help="Business objective <task>=<weight>,... [default: marketplace "
                   "click=1,conversion=10,like=5; kuairand click=1,long_view=2,like=20,"
                   "profile_enter=20]")
@click.option("--epochs", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--world", type=click.Choice(["marketplace", "kuairand"]), default="marketplace",
              show_default=True, help="Embedded synthetic marketplace, or the world fitted on "
              "the real KuaiRand-Pure logs (needs ../shared/data or $FUSIONTUNE_KUAIRAND).")
@click.option("--guardrail", "guardrail_text",
              help="Metrics that may not drop more than a fraction below control: click=0.05.")
@click.option("--interval", type=click.Choice(list(INTERVALS)), default="bootstrap",
              show_default=True,
              help="95% intervals: percentile bootstrap, studentized bootstrap or normal.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary instead of tables.")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
@click.option("--online", is_flag=True, help="Live rounds instead: --rounds rounds of 8 "
              "experiment groups pre-screened on the logs, the world playing the experiment "
              "platform on fresh requests (search ask / tell), then online vs offline lifts.")
@MLFLOW
@user_errors
def demo(out: Path, seed: int, n_requests: int, rounds: int, population: int,
         elite_fraction: float, estimator: str, objective_text: str | None, epochs: int,
         world: str, guardrail_text: str | None, interval: str, as_json: bool,
         no_progress: bool, estimator_param_text: tuple[str, ...] = (),
         mlflow_uri: str | None = None, online: bool = False) -> None:
    """Run the whole loop on the embedded synthetic marketplace.

    world -> logs (Parquet) -> MMoE ranker -> score table -> CEM rounds over
    fusion weights in a SQLite study -> A/B report on held-out requests with
    the world's true lift -> weights.json.
    """
    from tuner.demo import DEFAULT_OBJECTIVES, DemoConfig, as_dict, run_demo

    tasks = tuple(DEFAULT_OBJECTIVES[world])  # the world's tasks: every one is weighted
    objective = (parse_objective(objective_text, tasks) if objective_text
                 else dict(DEFAULT_OBJECTIVES[world]))
    guardrails = {g.metric: g.max_drop for g in parse_guardrails(guardrail_text, tasks)}
    estimator_params = parse_estimator_params(estimator_param_text, estimator)
    db = out / "study.db"
    if db.exists():
        db.unlink()
    config = DemoConfig(out_dir=out, seed=seed, n_requests=n_requests, rounds=rounds,
                        population=population, elite_fraction=elite_fraction,
                        estimator=estimator, objective=objective, epochs=epochs,
                        world=world, guardrails=guardrails, interval=interval,
                        estimator_params=estimator_params)
    say = (lambda s: click.echo(s, err=True)) if as_json else click.echo
    if online:
        _online_demo(config, rounds, as_json, say, not no_progress)
        return
    result = run_demo(config, say=say, progress=not no_progress)
    log_demo(mlflow_uri, config, result)
    if as_json:
        for p in result.picks:
            _warn_pick(p)
        dump({**as_dict(result), "picks": [
            {"pick": p.name, "weights": p.weights.tolist(), "search": p.search_values,
             "holdout": {r.metric: [r.treatment.value, r.treatment.low, r.treatment.high]
                         for r in p.holdout.rows},
             "events": ab_events(p.holdout),
             "true": p.truth} for p in result.picks]})
        return
    click.echo("\nCEM rounds (search split; best is the best single trial of the round):")
    click.echo(rounds_table(result.rounds))
    control = result.control_truth
    for p in result.picks:
        click.echo(f"\nA/B on {p.holdout.n_requests:,} held-out requests ({p.holdout.estimator}"
                   f"), pick '{p.name}' {np.round(p.weights, 3).tolist()} vs control:")
        truth = {t: (control[t], p.truth[t]) for t in control}
        truth[OBJECTIVE] = (sum(objective.get(t, 0) * v for t, v in control.items()),
                            p.true_objective(objective))
        click.echo(ab_table(p.holdout, p.search_values, truth))
        click.echo(_holdout_line(p))
        _warn_pick(p)
    click.echo(f"\nexported '{result.exported.pick}' -> {result.export_path}")
    click.echo(f"study: {result.storage} (optuna-dashboard {result.storage})")
    click.echo("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items()))



def _online_demo(config: DemoConfig, rounds: int, as_json: bool, say: Callable[[str], None],
                 progress: bool) -> None:
    """``demo --online``: the data steps, then live rounds (see :mod:`tuner.demo_online`)."""
    from tuner.cli._history import history_live, live_text
    from tuner.demo_online import OnlineDemoConfig, run_online_demo
    from tuner.study import load_search

    result = run_online_demo(config, OnlineDemoConfig(rounds=rounds), say, progress)
    if as_json:
        dump(result)
        return
    study, _ = load_search(result["storage"], "live")
    live = history_live(study)
    if live is not None:
        click.echo("\nlive groups (online lift vs the round's control, offline estimate):")
        click.echo(live_text(live))
    t = result["true_objective"]
    click.echo(f"\ntrue objective of CEM's mean {result['pick']}: {t['pick']:.4f} vs control "
               f"{t['control']:.4f} ({100 * t['lift']:+.2f}%)")
    click.echo(f"study: {result['storage']} (study 'live'; fusiontune search history "
               f"--storage {result['storage']} --study live)")


def _holdout_line(pick: Pick) -> str:
    """The held-out estimate of a pick's objective with its 95% interval, beside the truth."""
    row = next(r for r in pick.holdout.rows if r.metric == OBJECTIVE)
    t = row.treatment
    return (f"held-out estimate of '{pick.name}': {OBJECTIVE} {t.value:.3f} "
            f"[{t.low:.3f}, {t.high:.3f}] (control {row.control.value:.3f})")


def _warn_pick(pick: Pick) -> None:
    """The few-events warnings of one pick, each naming it (stderr)."""
    events = {f"pick '{pick.name}': {m}": n for m, n in ab_events(pick.holdout).items()}
    warn_few_events(events, "held-out")
