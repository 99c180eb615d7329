"""``fusiontune search pareto``: the Pareto front of 2 or 3 metrics, searched and shown."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import click
import numpy as np

from tuner.cli._common import (
    STORAGE,
    STUDY,
    dump,
    load_existing,
    storage_url,
    study_names,
    user_errors,
)
from tuner.cli._format import table
from tuner.cli._new_study import NEW_STUDY_OPTIONS, NewStudy
from tuner.cli._study_options import study_data_options
from tuner.evaluation.objective import FusionObjective
from tuner.evaluation.search_data import SearchSettings, Workspace
from tuner.pareto import (
    ATTR_PARETO,
    PARETO_STRATEGIES,
    ParetoConfig,
    ParetoFront,
    ParetoObjective,
    ParetoPoint,
    ParetoSearch,
    create_pareto_study,
    front_of_trials,
    load_pareto,
    parse_metrics,
    run_pareto,
)
from tuner.space import FusionSpace
from tuner.strategies import SCALARISATIONS

__all__ = ["search_pareto"]

# options of a Pareto study that must agree with the stored ones when it is continued
_PARETO_OPTIONS = ("strategy", "scalarisations", "scalarisation")


@click.command("pareto")
@STORAGE
@STUDY
@click.option("--metrics", "metrics_text",
              help="2 or 3 log tasks, e.g. click,like or click,like,long_view; ':min' "
                   "minimises one (hate:min). New study; with --rounds 0 any recorded ones.")
@click.option("--strategy", type=click.Choice(PARETO_STRATEGIES), default="cem",
              show_default=True,
              help="NSGA-II (Optuna's NSGAIISampler), or one CEM per scalarisation.")
@study_data_options
@click.option("--estimator-param", "estimator_param_text", multiple=True,
              help="Hyperparameter of --estimator, <name>=<number> (new study), e.g. "
                   "clip=50 for clipped_ips.")
@click.option("--examination", "examination_text",
              help="Slot examination curve 1,0.6,0.4 (CSV logs carry none; new study).")
@click.option("--objective", "objective_text",
              help="<task>=<weight>,... reported by 'search export' (not searched); "
                   "default each metric with weight 1.")
@click.option("--control", "control_text", help="Control weights <task>=<weight>,..., one per "
              "score task (the baseline of lifts and CEM's start; default all 1).")
@click.option("--guardrail", "guardrail_text",
              help="Metrics that may not drop more than a fraction below control: "
                   "click=0.05,like=2%. Infeasible trials are never on the front.")
@click.option("--rounds", type=click.IntRange(min=0), default=5, show_default=True,
              help="New generations to run; 0 only shows the front of the stored trials.")
@click.option("--population", type=click.IntRange(min=2), default=32, show_default=True,
              help="Trials per generation (CEM: all scalarisations together).")
@click.option("--scalarisations", type=click.IntRange(min=2), default=4, show_default=True,
              help="CEM: directions spread over the metrics' simplex, one CEM each.")
@click.option("--scalarisation", type=click.Choice(SCALARISATIONS), default="linear",
              show_default=True, help="CEM: weighted sum of relative lifts over control, or "
              "Chebyshev (also reaches non-convex parts of the front).")
@click.option("--elite-fraction", type=click.FloatRange(0, 1, min_open=True), default=0.25,
              show_default=True, help="CEM: share of each CEM's points refitted to.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--points", "max_points", type=click.IntRange(min=2), default=None,
              help="Print at most this many front points, evenly spread along the first "
                   "metric (--json always lists all).")
@click.option("--json", "as_json", is_flag=True, help="Print the front as JSON.")
@click.option("--plot", "plot_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also write pareto.png (trials, front with intervals, control) here.")
@click.option("--plot-intervals/--no-plot-intervals", default=True, show_default=True,
              help="Draw the front's 95% interval bars in --plot.")
@click.option("--no-progress", is_flag=True)
@click.pass_context
@user_errors
def search_pareto(ctx: click.Context, storage: str, study_name: str, metrics_text: str | None,
                  strategy: str, rounds: int, scalarisations: int, scalarisation: str,
                  max_points: int | None, as_json: bool, plot_dir: Path | None,
                  no_progress: bool, plot_intervals: bool = True, **options: Any) -> None:
    """Search and print the Pareto front of 2 or 3 metrics, such as clicks against likes.

    A new study needs --logs, --scores and --metrics; every evaluated weight
    vector is a trial with all its metrics, and the front is built from all
    feasible trials. On an existing study every setting comes from the
    database and the search continues where it stopped (same trials as an
    uninterrupted run). --rounds 0 only prints the front, also of a 'search
    run' study's trials on any --metrics. Export a point of the front with
    'fusiontune search export --trial N'.
    """
    url = storage_url(storage)
    params = ctx.params
    given = {p for p in params
             if ctx.get_parameter_source(p) == click.core.ParameterSource.COMMANDLINE}
    ws: Workspace | None = None
    if study_name in study_names(url):
        study, stored = load_existing(url, study_name)
        space, raw = stored.space, stored.settings
        settings = SearchSettings.from_dict(raw)
        if ATTR_PARETO not in study.user_attrs:
            if rounds:
                raise ValueError(f"study {study_name!r} was made by 'search run', not 'search "
                                 "pareto'; give --rounds 0 to see the front of its trials on "
                                 "--metrics, or start a new --study")
            _show(_front_of_run_study(study, space, metrics_text), settings, space,
                  "search run", as_json, plot_dir, max_points, plot_intervals, url=url)
            return
        search = load_pareto(url, study_name)
        shared = set(NEW_STUDY_OPTIONS) - {"strategy"}  # a Pareto strategy is its own option
        NewStudy.from_params(params).check_against(sorted(given & shared), stored)
        _check_pareto_options(given, params, search, rounds)
    else:
        missing = [o for o, v in (("--logs", options["logs"]), ("--scores", options["scores"]),
                                  ("--metrics", metrics_text)) if v is None]
        if missing:
            names = ", ".join(sorted(study_names(url))) or "none"
            raise ValueError(f"study {study_name!r} does not exist in {url} (studies: "
                             f"{names}); to create it give {' '.join(missing)}")
        assert metrics_text is not None
        cem_only = sorted(given & {"scalarisations", "scalarisation", "elite_fraction"})
        if strategy == "nsga2" and cem_only:
            listed = ", ".join("--" + o.replace("_", "-") for o in cem_only)
            raise ValueError(f"{listed}: only for --strategy cem, not nsga2")
        new = NewStudy.from_params({**options, "strategy": "cem"})  # a Pareto strategy: below
        settings, space, ws = new.build(
            lambda tasks: dict.fromkeys(parse_metrics(metrics_text, tasks)[0], 1.0))
        metrics, directions = parse_metrics(metrics_text, ws.traffic.tasks)
        config = ParetoConfig(metrics, directions, strategy, new.population, scalarisations,
                              scalarisation, new.elite_fraction or 0.25)
        evaluate = ParetoObjective(FusionObjective.for_workspace(ws))
        control = evaluate(_control_weights(settings, space)[None])[0].metrics
        search = create_pareto_study(url, study_name, space, config, new.seed,
                                     settings.to_dict(), control)
    if rounds:
        ws = ws if ws is not None else Workspace(settings)
        init = None if settings.control is None else np.asarray(settings.control)
        run_pareto(search, ParetoObjective(FusionObjective.for_workspace(ws)), rounds,
                   progress=not no_progress,
                   init_mean=None if init is None else search.space.from_weights(init))
    metrics, directions = search.config.metrics, search.config.directions
    if metrics_text is not None and not rounds:
        metrics, directions = parse_metrics(metrics_text, _recorded(search))
    front = front_of_trials(search.study, search.space, metrics, directions, search.control)
    _show(front, settings, search.space, search.config.strategy, as_json, plot_dir, max_points,
          plot_intervals, url=url)


def _control_weights(settings: SearchSettings, space: FusionSpace) -> np.ndarray:
    """``[T]`` control weights (all 1 unless the study stored some), as export uses them."""
    if settings.control is None:
        return np.ones(len(space.tasks))
    return np.asarray(settings.control, dtype=np.float64)


def _check_pareto_options(given: set[str], params: dict[str, Any], search: ParetoSearch,
                          rounds: int) -> None:
    cfg = search.config
    stored = {"strategy": cfg.strategy, "scalarisations": cfg.n_scalarisations,
              "scalarisation": cfg.scalarisation}
    for name in _PARETO_OPTIONS:
        if name in given and params[name] != stored[name]:
            raise ValueError(f"--{name} {params[name]} conflicts with the study's stored "
                             f"{stored[name]}; omit it to continue the study, or use a new "
                             "--study")
    if rounds and params["metrics_text"] is not None:
        metrics = parse_metrics(params["metrics_text"], _recorded(search))
        if metrics != (cfg.metrics, cfg.directions):
            raise ValueError(f"--metrics {params['metrics_text']} conflicts with the study's "
                             f"stored {_metrics_text(cfg)}; omit it to continue the study "
                             "(--rounds 0 shows the front on other recorded metrics)")


def _metrics_text(cfg: ParetoConfig) -> str:
    return ",".join(m if d == "maximize" else f"{m}:min"
                    for m, d in zip(cfg.metrics, cfg.directions, strict=True))


def _recorded(search: ParetoSearch) -> list[str]:
    """Metrics the study's trials record (the configured ones before any trial)."""
    return _recorded_metrics(search.study) or list(search.control) or list(search.config.metrics)


def _recorded_metrics(study: Any) -> list[str]:
    for t in study.get_trials(deepcopy=False):
        names = [k[7:] for k in t.user_attrs if k.startswith("metric:")]
        if names:
            return names
    return []


def _front_of_run_study(study: Any, space: FusionSpace,
                        metrics_text: str | None) -> ParetoFront:
    """The front of a single-objective ('search run') study's trials on ``metrics_text``."""
    recorded = _recorded_metrics(study)
    if metrics_text is None:
        raise ValueError(f"give --metrics (2 or 3 of {recorded}) to see the front of study "
                         f"{study.study_name!r}'s trials")
    metrics, directions = parse_metrics(metrics_text, recorded)
    return front_of_trials(study, space, metrics, directions)


def _show(front: ParetoFront, settings: SearchSettings, space: FusionSpace, strategy: str,
          as_json: bool, plot_dir: Path | None, max_points: int | None = None,
          intervals: bool = True, *, url: str) -> None:
    if plot_dir is not None:
        from tuner.pareto import plot_front

        click.echo(f"wrote {plot_front(front, plot_dir, intervals)}", err=True)
    control = _control_weights(settings, space)
    if as_json:
        dump({**front.to_dict(), "strategy": strategy, "tasks": list(space.tasks),
               "control_weights": dict(zip(space.tasks, control.tolist(), strict=True))})
        return
    distinct = front.distinct()
    shown = [p for p, _ in distinct]
    if max_points is not None and len(shown) > max_points:
        keep = np.unique(np.linspace(0, len(shown) - 1, max_points).round().astype(int))
        shown = [shown[i] for i in keep]
    click.echo(front_table(front, space, control, shown))
    n_feasible = len(front.trials) - front.n_infeasible
    lines = [f"{len(front.points)} non-dominated of {n_feasible} feasible trials "
             f"({strategy}; metrics {', '.join(front.metrics)}; estimates and 95% intervals "
             "on the search split)"]
    if len(distinct) < len(front.points):
        lines.append(f"{len(front.points) - len(distinct)} front trials repeat the weights "
                     "of a listed one and are not shown (--json lists them)")
    if len(shown) < len(distinct):
        lines.append(f"{len(shown)} of the {len(distinct)} distinct front points shown "
                     "(--points)")
    if front.n_infeasible:
        lines.append(f"{front.n_infeasible} trials break a guardrail and are never on the "
                     "front (reasons: 'search history --trials --json')")
    if front.n_failed:
        lines.append(f"{front.n_failed} trials failed (non-finite estimate)")
    if shown:  # a command that works when pasted: this database, this study, a front trial
        lines.append("export a point (judged on held-out requests; --trial any front trial): "
                     + export_command(url, front.study_name, shown[0].trial))
    click.echo("\n".join(lines))


def export_command(url: str, study_name: str, trial: int) -> str:
    """The shell command exporting ``trial`` of a study, quoted to paste as it is.

    Example:
        >>> export_command("sqlite:///a b.db", "p", 7)
        "fusiontune search export --storage 'sqlite:///a b.db' --study p --trial 7"
    """
    return ("fusiontune search export --storage " + shlex.quote(url) + " --study "
            + shlex.quote(study_name) + f" --trial {trial}")


def front_table(front: ParetoFront, space: FusionSpace, control: np.ndarray,
                points: list[ParetoPoint] | None = None) -> str:
    """Trial, free weights, each metric's estimate [95% CI] and lift vs control of each of
    ``points`` (default the front's distinct points); the control first when known."""
    header = ["trial", *space.param_names, *[f"{m} [95% CI]" for m in front.metrics]]
    if front.control:
        header += [f"{m} lift" for m in front.metrics]
    free = [i for i, t in enumerate(space.tasks) if t != space.pinned]
    rows: list[list[object]] = []

    def cell(value: float, low: float, high: float) -> str:
        return f"{value:.4f} [{low:.4f}, {high:.4f}]"

    if front.control:
        c = front.control
        scale = control[space.tasks.index(space.pinned)]
        rows.append(["control", *[f"{control[i] / scale:.3f}" for i in free],
                     *[cell(c[m].value, c[m].low, c[m].high) for m in front.metrics],
                     *["" for _ in front.metrics]])
    for p in points if points is not None else [p for p, _ in front.distinct()]:
        row: list[object] = [p.trial, *[f"{p.weights[space.tasks[i]]:.3f}" for i in free],
                             *[cell(p.metrics[m].value, p.metrics[m].low, p.metrics[m].high)
                               for m in front.metrics]]
        if front.control:
            lift = p.lift(front.control)
            row += [f"{100 * lift[m]:+.1f}%" for m in front.metrics]
        rows.append(row)
    return table(header, rows)
