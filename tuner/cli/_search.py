"""``search run|worker|export``: a search stored in a database (the ``search``
group itself is :func:`tuner.cli._main.search`)."""

from __future__ import annotations

import dataclasses
import importlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import numpy as np
import optuna

from simulator.proxies import ORDERING_SCORES
from simulator.report import ABReport
from tuner.cli._common import (
    STORAGE,
    STUDY,
    dump,
    dump_line,
    load_existing,
    stage,
    storage_url,
    study_names,
    user_errors,
)
from tuner.cli._format import loss_trial_columns, rounds_table, table
from tuner.cli._loss import export_loss_study, objective_for, open_config_study
from tuner.cli._new_study import NewStudy, given_options
from tuner.cli._report_text import ab_events, ab_table, warn_few_events
from tuner.cli._run_clock import RunClock
from tuner.cli._study_options import study_data_options
from tuner.cli._track import MLFLOW, log_search
from tuner.evaluation.loss_study import SPACES, is_loss_study
from tuner.evaluation.objective import FusionObjective
from tuner.evaluation.search_data import SearchSettings, Workspace
from tuner.picks.control_test import CONTROL_TESTS, DEFAULT_CONTROL_TEST, ControlTest
from tuner.picks.export import ExportedWeights
from tuner.picks.picking import (
    BEST_CANDIDATES,
    ORDERS,
    beats_control,
    best_by_order,
    control_export,
    export_pick,
    pick_weights,
    validated_export,
)
from tuner.segments import ATTR_SEGMENTS, refuse_segment_study
from tuner.segments._cli import check_segment_options, run_segments, segment_export
from tuner.storage import ProjectStore
from tuner.strategies import STRATEGIES
from tuner.study import (
    ATTR_EXPORTED,
    ATTR_TARGET,
    ConvergenceRule,
    SearchSpec,
    check_single_objective,
    completed_rounds,
    create_or_load_study,
    exported_attr,
    history,
    load_search,
    read_spec,
    run_rounds,
    run_until_converged,
    set_target_rounds,
    trials_table,
)


@click.command("run")
@STORAGE
@STUDY
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Search file (TOML) with data, objective, ranker and search settings "
                   "(new study; example: configs/search_demo.toml). Replaces --logs, --scores...")
@click.option("--space", "space_name", type=click.Choice(SPACES), default=None,
              help="With --config: which weights are searched (default: the file's). fusion: "
                   "fusion weights over one score table; loss: the ranker's loss weights, "
                   "every trial retrains it (cached); joint: loss weights, every trial also "
                   "tunes the fusion weights by an inner CEM.")
@study_data_options
@click.option("--estimator-param", "estimator_param_text", multiple=True,
              help="Hyperparameter of --estimator, <name>=<number> (repeatable or a comma "
                   "list), e.g. clip=50 for clipped_ips, tau=5 for switch (new study).")
@click.option("--objective", "objective_text", help="<task>=<weight>,... (new study).")
@click.option("--control", "control_text", help="Control weights <task>=<weight>,..., one "
              "per score task (the A/B baseline and the strategy's start; default all 1).")
@click.option("--guardrail", "guardrail_text",
              help="Metrics that may not drop more than a fraction below control, judged at "
                   "the lower end of the paired 95% lift interval: click=0.05,like=2%.")
@click.option("--examination", "examination_text",
              help="Examination probability of each slot, e.g. 1,0.6,0.4 (new study; needed "
                   "for a CSV log, replaces a Parquet log's own curve).")
@click.option("--strategy", type=click.Choice(list(STRATEGIES)), default="cem",
              show_default=True,
              help="Search strategy (new study): "
                   + "; ".join(f"{n}: {e.summary}" for n, e in STRATEGIES.items()) + ".")
@click.option("--rounds", type=click.IntRange(min=0), default=None,
              help="Complete generations the study should have when the run ends (a total, "
                   "so rerunning the same command after a crash finishes the same study); "
                   "default: a new study 5, an existing one the target it stored.")
@click.option("--until", "until", type=click.Choice(["rounds", "converged"]), default="rounds",
              show_default=True,
              help="converged: stop once --patience rounds in a row beat the best round so "
                   "far by no more than half its 95% interval (--rounds is then the cap).")
@click.option("--patience", type=click.IntRange(min=1), default=3, show_default=True,
              help="Rounds without an improvement beyond the noise, for --until converged.")
@click.option("--population", type=click.IntRange(min=4), default=32, show_default=True)
@click.option("--elite-fraction", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Share of a generation kept as elites (cem, steady-cem; default 0.25).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Spawn this many 'search worker' processes sharing the rounds (best on "
                   "PostgreSQL); default: this process alone.")
@click.option("--chunk", type=click.IntRange(min=1), default=None,
              help="Members a worker claims at a time (default population / workers).")
@click.option("--segment-by", default=None, metavar="FEATURE[,FEATURE...]",
              help="Also search one weight vector per segment of these request-level log "
              "features (e.g. feature_user_activity), each in study <study>/segment-<i>: "
              "quantile buckets of one feature, k-means clusters of several.")
@click.option("--segments", "n_segments", type=click.IntRange(min=1), default=4,
              show_default=True, help="With --segment-by: quantile buckets or k-means "
              "clusters of the search split (fewer when segments with too few expected "
              "events are merged).")
@click.option("--segment-kind", type=click.Choice(["quantiles", "kmeans"]), default=None,
              help="With --segment-by: quantiles (one feature) or kmeans (k-means clusters "
              "of the standardized features, seeded by --seed)  [default: quantiles for "
              "one feature, kmeans for several]")
@click.option("--segment-min-events", type=click.FloatRange(min=0), default=None,
              help="With --segment-by: fewest expected objective events a segment may rest "
              "on before it is merged with a neighbour  [default: 100, MIN_EVENTS]")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON: the round summaries and where the time went "
                   "({\"rounds\": [...], \"timing\": {...}}).")
@click.option("--jsonl", "as_jsonl", is_flag=True,
              help="Stream one JSON object per completed round on stdout as it completes "
                   "(with --workers: once the workers finish).")
@click.option("--stream", is_flag=True,
              help="Read the log chunk by chunk even from one file (new study; a folder of "
                   "Parquet files always is), so memory is set by the chunk, not the log.")
@click.option("--engine", type=click.Choice(["embedded", "dask"]), default="embedded",
              show_default=True, help="dask: each generation is evaluated by Dask tasks, "
              "each reading its own files of the (streamed) log and returning sums.")
@click.option("--dask-workers", type=click.IntRange(min=1), default=2, show_default=True,
              help="With --engine dask: worker processes of the local cluster started.")
@click.option("--scheduler", default=None,
              help="With --engine dask: join this cluster (tcp://host:8786) instead.")
@click.option("--no-progress", is_flag=True, help="No bar and no stage lines on stderr.")
@MLFLOW
@click.pass_context
@user_errors
def search_run(ctx: click.Context, storage: str, study_name: str, config_path: str | None,
               space_name: str | None, rounds: int | None, workers: int | None,
               chunk: int | None, as_json: bool, as_jsonl: bool, no_progress: bool,
               mlflow_uri: str | None, until: str, patience: int, engine: str,
               dask_workers: int, scheduler: str | None, segment_by: str | None,
               n_segments: int, segment_min_events: float | None, segment_kind: str | None,
               **study: Any) -> None:
    """Run a study to --rounds generations; a new study needs --config, or --logs, --scores
    and --objective.

    On an existing study every setting comes from the database and the run
    continues where the last one stopped (an interrupted generation included)
    until the study has --rounds complete generations. With --workers N, N
    worker processes share each generation; more workers may join from other
    machines with 'fusiontune search worker'.
    """
    if as_json and as_jsonl:
        raise ValueError("give one of --json (all rounds at the end) and --jsonl (a line "
                         "per round as it completes)")
    if segment_by is not None:  # a malformed list fails before any trial is written
        check_segment_options(segment_by, segment_kind)
    clock = RunClock()
    url = storage_url(storage)
    given = given_options(ctx)
    options = NewStudy.from_params(study)
    with clock.part("database"):
        names = study_names(url)
        stored = load_search(url, study_name) if study_name in names else None
    raw = stored[1].settings if stored is not None else {}
    if until == "converged" and (raw.get("estimator") if stored is not None
                                 else options.estimator) in ORDERING_SCORES:
        raise ValueError("--until converged stops on rounds that do not beat the best by "
                         "more than its interval, and an ordering score (auc, gauc) has "
                         "none; give --rounds N")
    ws: Workspace | None = None
    if config_path is not None or space_name is not None or is_loss_study(raw):
        if given:
            listed = ", ".join("--" + g.removesuffix("_text").replace("_", "-") for g in given)
            raise ValueError(f"{listed}: a search file study takes its settings from the "
                             "file (--config), not from options")
        with clock.part("read"):  # the search file's data read and checked, its study made
            study_, search_, file_rounds = open_config_study(
                url, study_name, config_path, space_name, lambda m: click.echo(m, err=True))
        default_rounds = file_rounds
    elif stored is not None:
        study_, search_ = stored
        options.check_against(given, search_)
        default_rounds = 5
    else:
        if options.missing():
            existing = ", ".join(names) if names else "none"
            raise ValueError(f"study {study_name!r} does not exist in {url} (studies: "
                             f"{existing}); to create it give --config, or "
                             f"{' '.join(options.missing())}")
        config = options.strategy_config()
        check_chunks(options.estimator, chunk, options.population, workers)  # before writing
        with stage(f"reading and checking {options.logs} and {options.scores}",
                   not no_progress), clock.part("read"):
            settings, space, ws = options.build()  # refuses bad inputs before the study exists
        init = np.asarray(settings.control) if settings.control is not None else None
        with clock.part("database"):
            study_ = create_or_load_study(
                url, study_name, space, config, options.seed, settings=settings.to_dict(),
                init_mean=None if init is None else space.from_weights(init))
            search_ = read_spec(study_)
        default_rounds = 5
    check_single_objective(study_)
    refuse_segment_study(study_, "run")
    target = _target(study_, rounds, default_rounds)
    with clock.part("database"):
        set_target_rounds(study_, target)
        done = completed_rounds(study_, search_.population)
    if workers is not None and engine == "dask":
        raise ValueError("--engine dask runs the rounds on Dask workers; drop --workers")
    if workers is not None and until == "converged":
        raise ValueError("--until converged runs the rounds in this process; drop --workers")
    if workers is not None:
        n_chunk = _worker_chunk(chunk, search_.population, workers)
        check_chunks(_fusion_estimator(search_.settings), n_chunk, search_.population, workers)
        with clock.rounds(in_process=False):
            _spawn_workers(url, study_name, workers, n_chunk, target)
        with clock.part("database"):
            summaries = history(study_, search_)[done:target]
        if as_jsonl:
            for s in summaries:
                dump_line(s.to_dict())
    else:
        objective = _objective(ws, search_, study_name, engine, dask_workers, scheduler,
                               not no_progress, clock)
        on_round = (lambda s: dump_line(s.to_dict())) if as_jsonl else None
        import ranker.progress  # noqa: F401  (torch: imported here, not in the rounds' time)

        try:
            with clock.rounds():
                summaries = _rounds_here(study_, search_, clock.timed(objective), target,
                                         patience if until == "converged" else None,
                                         not no_progress, on_round)
        finally:  # a Dask engine's cluster
            getattr(getattr(objective, "replay", None), "close", lambda: None)()
    _report_run(study_, search_, summaries, done, target, url, as_json, as_jsonl, clock,
                not no_progress)
    if segment_by is not None or ATTR_SEGMENTS in study_.user_attrs:
        _run_segments(url, study_, search_, (segment_by, n_segments, segment_min_events,
                                             segment_kind), target, workers, not no_progress)
    log_search(mlflow_uri, "search run", url, study_, search_,
               extra={"target_rounds": target, "workers": workers})


def _rounds_here(study: Any, search: SearchSpec, objective: Callable[[np.ndarray], Any],
                 target: int, patience: int | None, progress: bool,
                 on_round: Callable[[Any], None] | None) -> list[Any]:
    """The rounds in this process, to ``target`` (with ``patience``: until converged)."""
    if patience is None:
        return run_rounds(study, search, objective, until=target, progress=progress,
                          on_round=on_round)
    summaries, stop = run_until_converged(study, search, objective, target,
                                          ConvergenceRule(patience), progress,
                                          on_round=on_round)
    click.echo(f"converged after round {stop.round}: {stop.reason()}; stopped there"
               if stop is not None else f"not converged by the cap of --rounds {target}",
               err=True)
    return summaries  # type: ignore[no-any-return]


def _run_segments(url: str, study: Any, search: SearchSpec,
                  segments: tuple[str | None, int, float | None, str | None], target: int,
                  workers: int | None, progress: bool) -> None:
    """The per-segment studies of a segmented search (``tuner.segments``), to ``target``;
    ``segments``: ``--segment-by``, ``--segments``, ``--segment-min-events``,
    ``--segment-kind``."""
    if workers is not None:
        raise ValueError("--segment-by runs its segments in this process; drop --workers")
    segment_by, k, min_events, kind = segments
    run_segments(url, study, search, segment_by, k, target, progress,
                 lambda m: click.echo(m, err=True), min_events, kind)


def _objective(ws: Workspace | Any | None, search: SearchSpec, study_name: str, engine: str,
               dask_workers: int, scheduler: str | None, progress: bool, clock: RunClock
               ) -> Callable[[np.ndarray], Any]:
    """The objective ``search run`` evaluates: on Dask (``--engine dask``), on the workspace
    just checked (a new study), or the study's own; reading and the engine's start timed
    on ``clock``."""
    if engine == "dask":
        from tuner.evaluation.dask_engine import dask_objective, start_client
        from tuner.evaluation.streamed import StreamedWorkspace

        if not isinstance(ws, StreamedWorkspace):  # an existing study, or one held in memory
            with stage(f"reading the logs and scores of study {study_name!r}", progress), \
                    clock.part("read"):
                ws = StreamedWorkspace(SearchSettings.from_dict(search.settings))
                _ = ws.score_index
        with stage(f"starting Dask ({scheduler or f'{dask_workers} local workers'})",
                   progress), clock.part("engine_start"):
            client = start_client(dask_workers, scheduler)
        return dask_objective(search.settings, workspace=ws, client=client)
    if ws is not None:
        return FusionObjective.for_workspace(ws)
    with stage(f"reading and checking the logs and scores of study {study_name!r}",
               progress and not is_loss_study(search.settings)), clock.part("read"):
        return objective_for(search.settings, progress=progress)


def _target(study: Any, rounds: int | None, default: int) -> int:
    """The study's target of complete generations: ``--rounds``, else the stored one, else
    ``default``."""
    if rounds is not None:
        return rounds
    stored = study.user_attrs.get(ATTR_TARGET)
    return int(stored) if stored is not None else default


def _report_run(study: Any, search: SearchSpec, summaries: list[Any], done: int, target: int,
                url: str, as_json: bool, as_jsonl: bool, clock: RunClock,
                progress: bool) -> None:
    """What ``search run`` prints: the rounds (or JSON, or nothing more after JSON lines),
    the few-events warning and where the time went (stderr; in the JSON as ``timing``)."""
    # the objective of the last round's best trial, as the rounds table reports it
    events = {f"objective of round {s.round}'s best trial {s.best_trial}": s.best_events
              for s in summaries[-1:]}
    timing = clock.stop()
    if progress:
        click.echo(clock.line(), err=True)
    if as_json or as_jsonl:
        if as_json:
            dump({"rounds": [s.to_dict() for s in summaries], "timing": timing})
        warn_few_events(events, "search")
        return
    if done >= target and not summaries:
        click.echo(f"study {study.study_name!r} already has {done} complete rounds (target "
                   f"{target}); nothing to run - give --rounds {done + 5} to run 5 more",
                   err=True)
    click.echo(rounds_table(history(study, search), search.space.prefix))
    warn_few_events(events, "search")
    if is_loss_study(search.settings) and summaries:  # what each loss vector bought
        rows = trials_table(study)[-len(summaries) * search.population:]
        click.echo(table(*loss_trial_columns(rows)))
    click.echo(f"{len(study.trials)} trials in study {study.study_name!r} ({url})")


def _export_segments(ws: Any, study: Any, exported: Any, url: str, out: Path | None,
                     force: bool, as_json: bool) -> None:
    """Write the segment table of a segmented study, its default row ``exported``."""
    data = segment_export(ws, study, exported, url, out, force,
                          lambda m: click.echo(m, err=True))
    if as_json:
        click.echo(json.dumps(data, indent=2))
    if out is not None and data is not None:
        click.echo(f"wrote {out} (segment table, schema {data['schema_version']})")


def _fusion_estimator(settings: dict[str, Any]) -> str | None:
    """The estimator of a fusion study's settings (None for a loss-weight study, whose
    trials each run a search of their own)."""
    return None if is_loss_study(settings) else settings.get("estimator")


def _worker_chunk(chunk: int | None, population: int, workers: int) -> int:
    """Members a worker claims at a time: ``chunk``, or the population split evenly over
    ``workers`` (rounded up)."""
    return chunk or max(1, -(-population // workers))


def check_chunks(estimator: str | None, chunk: int | None, population: int,
                 workers: int | None = 1) -> None:
    """Refuse workers that would evaluate a pooling estimator's generation in pieces.

    ``chunk``: members a worker claims (None: ``population / workers``, rounded up, as
    ``search run --workers`` hands out); ``workers``: None where no worker runs.

    An estimator with its own ``finish`` (``pooled_dr``, ``gated_dr``) pools each vector's
    estimate over the vectors evaluated with it, so a trial's value depends on its chunk:
    chunks smaller than the generation would store other values than one process does.

    Raises:
        ValueError: such an estimator with ``chunk < population``, saying what works.
    """
    from simulator.estimators import ESTIMATORS, BaseEstimator

    if workers is None:
        return
    chunk = _worker_chunk(chunk, population, workers)
    cls = ESTIMATORS.get(estimator or "")
    if cls is None or cls.finish is BaseEstimator.finish or chunk >= population:
        return
    raise ValueError(f"estimator {estimator!r} pools each vector's estimate over the vectors "
                     f"evaluated with it, so chunks of {chunk} of a generation's {population} "
                     "would store other values than one process; run without --workers, or "
                     f"give --chunk {population}")


def _spawn_workers(url: str, study_name: str, n: int, chunk: int, target: int) -> None:
    """Run ``n`` ``search worker`` processes to the study's target and wait for them.

    A worker that fails does not fail the run while the others finish the target (its
    claims go stale and are taken over); if the target is not reached, the message says how
    far the study got and that the same command finishes it.
    """
    cmd = [sys.executable, "-c", "from tuner.cli import main; main()", "search", "worker",
           "--storage", url, "--study", study_name, "--chunk", str(chunk)]
    # the workers' lines go to stderr, so that stdout stays this command's (e.g. --json)
    procs = [subprocess.Popen(cmd, stdout=2) for _ in range(n)]
    try:
        codes = [p.wait() for p in procs]
    except BaseException:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        raise
    bad = [c for c in codes if c != 0]
    if not bad:
        return
    study, search = load_search(url, study_name)
    done = completed_rounds(study, search.population)
    if done >= target:
        click.echo(f"warning: {len(bad)} of {n} workers failed (exit codes {bad}), but the "
                   f"others completed all {target} rounds", err=True)
        return
    raise ValueError(f"{len(bad)} of {n} workers failed (exit codes {bad}); the study has "
                     f"{done} of {target} complete rounds (finished trials are saved); run "
                     "the same command again to finish the rest")


def _import_evaluate(spec: str) -> Callable[[np.ndarray], Any]:
    """``module:function`` -> the function."""
    module, sep, name = spec.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"--evaluate {spec!r} is not module:function")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"--evaluate {spec!r}: {err}") from None
    if not callable(fn):
        raise ValueError(f"--evaluate {spec!r} is not callable")
    return fn  # type: ignore[no-any-return]


@click.command("worker")
@STORAGE
@STUDY
@click.option("--until", type=click.IntRange(min=0), default=None,
              help="Stop when the study has this many complete rounds (default: the target "
                   "the last 'search run --workers' stored).")
@click.option("--chunk", type=click.IntRange(min=1), default=8, show_default=True,
              help="Members claimed and evaluated at a time.")
@click.option("--heartbeat", type=click.FloatRange(min=0, min_open=True), default=5.0,
              show_default=True, help="Seconds between heartbeats of this worker's claims.")
@click.option("--stale-after", type=click.FloatRange(min=0, min_open=True), default=60.0,
              show_default=True,
              help="Seconds without heartbeat after which a claim is taken over.")
@click.option("--evaluate", "evaluate_spec", default=None,
              help="module:function mapping weights W [M, T] to TrialResults, instead of the "
                   "study's replay objective.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON line per event (chunk, refit, lost) and a final report.")
@user_errors
def search_worker(storage: str, study_name: str, until: int | None, chunk: int,
                  heartbeat: float, stale_after: float, evaluate_spec: str | None,
                  as_json: bool) -> None:
    """Evaluate claimed chunks of a study's generations until its target.

    Start any number of workers, on any machines, against one database
    (PostgreSQL): each generation's members are handed out once, a dead
    worker's claims are taken over after --stale-after, and the trials are
    those a single process would have written.
    """
    from tuner.study import WorkerConfig, run_worker

    url = storage_url(storage)
    _, search_ = load_existing(url, study_name)
    if evaluate_spec is None:
        check_chunks(_fusion_estimator(search_.settings), chunk, search_.population)
    evaluate = (_import_evaluate(evaluate_spec) if evaluate_spec is not None
                else objective_for(search_.settings))
    config = WorkerConfig(chunk=chunk, heartbeat_interval=heartbeat, stale_after=stale_after)

    def show(event: dict[str, Any]) -> None:
        if as_json:
            click.echo(json.dumps(event))
        elif event["event"] == "refit":
            click.echo(f"round {event['round']} complete (refit recorded by this worker)")

    report = run_worker(url, study_name, evaluate, until, config, on_event=show)
    if as_json:
        click.echo(json.dumps({"event": "report", **dataclasses.asdict(report)}))
    else:
        click.echo(f"worker {report.worker}: {report.evaluated} trials in {report.chunks} "
                   f"chunks; study has {report.rounds_done} complete rounds")


def _check_pick_options(best: bool, trial_number: int | None, validated: bool,
                        order: str | None) -> None:
    if best and trial_number is not None:
        raise ValueError("give --best or --trial, not both")
    if order is not None and not best:
        raise ValueError("--order ranks the trials of --best; give --best with it")
    if validated and (best or trial_number is not None):
        raise ValueError("--validated chooses among the strategy's picks; it takes no "
                         "--best or --trial")


def _export_fusion_pick(ws: Any, study: optuna.Study, search: SearchSpec, pick: str,
                        trial_number: int | None, control_test: str, order: str | None
                        ) -> tuple[ExportedWeights, ABReport, dict[str, float]]:
    """``search export``'s pick of a fusion study (the strategy's, ``--trial N`` or
    ``--best`` ranked by ``order``), judged on the held-out split."""
    selection = None
    number: int | None
    if pick == "best_trial":
        weights, number, selection = best_by_order(ws, study, search, order or "auto")
        if selection["note"]:
            click.echo(f"note: --best {selection['note']}", err=True)
    else:
        weights, number = pick_weights(study, search, pick, trial_number)
    # a Pareto point is chosen on several metrics; one objective's lift does not judge it
    return export_pick(ws, study.study_name, weights, pick, number, search.space.pinned,
                       control_test=control_test if len(study.directions) == 1 else None,
                       selection=selection)


@click.command("export")
@STORAGE
@STUDY
@click.option("--trial", "trial_number", type=int, help="Export this trial number.")
@click.option("--best", is_flag=True, help="Export the best single trial (prone to the "
              "winner's curse) instead of the strategy's pick (CEM: its final mean): of the "
              f"{BEST_CANDIDATES} best by their stored value, the first by --order on the "
              "search split.")
@click.option("--order", type=click.Choice(ORDERS), default=None,
              help="What ranks the trials of --best: gated_dr (an ordering score, less "
              "noisy than the replay on small logs), the stored value (estimate), or auto "
              "(default): gated_dr where the log is held whole and every label task is "
              "scored, else the stored value. Recorded in extra.selection.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="File to write  [default: weights.json; with --json: none]")
@click.option("--validated", is_flag=True, help="Choose the strategy's pick among its picks "
              "after rounds 1, 2, 4, ... and the last by gated_dr on the search split, and "
              "report and test it on the whole held-out split (with --control-test "
              "two-sided: choose on half the held-out requests, report on the other half).")
@click.option("--control-test", "control_test", type=click.Choice(CONTROL_TESTS),
              default=DEFAULT_CONTROL_TEST, show_default=True,
              help="What a pick must pass on held-out requests to replace the control "
              "weights: one-sided: the one-sided 95%% lower bound of its cdr (calibrated DR) "
              "paired objective lift is above 0; two-sided: the lower end of the two-sided "
              "95%% interval of the study estimator's paired lift is (the rule before).")
@click.option("--force", is_flag=True, help="Overwrite the --out file if it exists.")
@click.option("--force-pick", is_flag=True, help="Export the pick even if it does not beat "
              "the control weights on held-out requests.")
@click.option("--json", "as_json", is_flag=True, help="Print the exported JSON (and write "
              "no file unless --out is given).")
@MLFLOW
@user_errors
def search_export(storage: str, study_name: str, trial_number: int | None, best: bool,
                  out: Path | None, force: bool, force_pick: bool, as_json: bool,
                  mlflow_uri: str | None = None, validated: bool = False,
                  control_test: str = DEFAULT_CONTROL_TEST, order: str | None = None) -> None:
    """Export a weight vector, judged on the held-out split, as JSON for serving.

    Default: the strategy's pick (CEM: its final mean, denoised); --best: the
    best trial; --trial N. A pick whose held-out lift over the control weights
    is not significantly above 0 (--control-test) is replaced by the control
    weights unless --force-pick; the test is recorded in extra.control_test.
    """
    _check_pick_options(best, trial_number, validated, order)
    if out is None and not as_json:
        out = Path("weights.json")
    if out is not None and out.exists() and not force:
        raise ValueError(f"--out {out} exists; give --force to overwrite it")
    from tuner.evaluation.streamed import open_workspace  # a folder, or --stream: streamed

    url = storage_url(storage)
    study, search_ = load_existing(url, study_name)
    refuse_segment_study(study, "export")
    raw = search_.settings
    pick = "trial" if trial_number is not None else "best_trial" if best else "strategy"
    if is_loss_study(raw) and order is not None:
        raise ValueError(f"study {study_name!r} searches loss weights: --best takes its best "
                         "trial by stored value (a trial is a trained ranker); drop --order")
    if is_loss_study(raw):
        exported, report, search_values = export_loss_study(
            study, search_, pick, trial_number, lambda m: click.echo(m, err=True))
        number = exported.trial_number
    elif validated:
        if len(study.directions) > 1:
            raise ValueError(f"study {study_name!r} is a Pareto study; --validated needs a "
                             "single objective")
        ws = open_workspace(SearchSettings.from_dict(raw))
        exported, report, search_values = validated_export(ws, study, search_, control_test)
        number = None
    else:
        ws = open_workspace(SearchSettings.from_dict(raw))
        exported, report, search_values = _export_fusion_pick(
            ws, study, search_, pick, trial_number, control_test, order)
        number = exported.trial_number
    if "control_test" in exported.extra and not beats_control(exported):
        test = ControlTest.from_dict(exported.extra["control_test"])
        if force_pick:
            exported = dataclasses.replace(exported, extra={
                **exported.extra, "control_test": {**exported.extra["control_test"],
                                                   "forced": True}})
        else:
            where = ("the report half of the held-out requests" if test.split != "holdout"
                     else "held-out requests")
            click.echo(f"warning: the {pick} pick does not beat the control weights on "
                       f"{where} ({test.describe()}: not above 0); exporting the control "
                       "weights instead (--force-pick exports the pick)", err=True)
            exported = control_export(exported, report)
            pick, number = exported.pick, None
    if ATTR_SEGMENTS in study.user_attrs and not is_loss_study(raw):  # default row: exported
        _export_segments(ws, study, exported, url, out, force, as_json)
        return
    path = None if out is None else exported.write(out, overwrite=force)
    if path is not None:
        with ProjectStore(url) as store:
            store.record_export(study_name, number, str(path.resolve()),
                                json.loads(exported.to_json()))
    study.set_user_attr(ATTR_EXPORTED, exported_attr(json.loads(exported.to_json())))
    log_search(mlflow_uri, "search export", url, study, search_, report, exported,
               extra={"pick": pick, "out": None if path is None else str(path)})
    if as_json:
        click.echo(exported.to_json())
        warn_few_events(ab_events(report), "held-out")
        return
    if "loss_weights" in exported.extra:
        click.echo(f"pick '{pick}' loss weights {exported.extra['loss_weights']}, ranker "
                   f"{exported.extra['ranker_checkpoint']}")
    click.echo(f"pick '{pick}' {'fusion ' if 'loss_weights' in exported.extra else ''}"
               f"weights {exported.weight_map}")
    click.echo(ab_table(report, search_values))
    if "control_test" in exported.extra:
        record = exported.extra["control_test"]
        click.echo(f"control test ({record['rule']}): "
                   f"{ControlTest.from_dict(record).describe()}: {record['verdict']}"
                   + (" (forced)" if record.get("forced") else ""))
    warn_few_events(ab_events(report), "held-out")
    click.echo(f"wrote {path}")

