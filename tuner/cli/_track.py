"""``--mlflow URI``: what each command logs to a tracked run (see :mod:`tuner.tracking`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import click

from tuner.tracking import INSTALL_HINT, mlflow_installed, tracked_run


def _needs_mlflow(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Refuse --mlflow before any work when MLflow is missing (not after an hour's run)."""
    if value and not mlflow_installed():
        raise click.ClickException(INSTALL_HINT)
    return value or None


MLFLOW = click.option(
    "--mlflow", "mlflow_uri", envvar="MLFLOW_TRACKING_URI", default=None, metavar="URI",
    callback=_needs_mlflow,
    help="Log this command to MLflow at URI (e.g. file:///tmp/mlruns, no server needed; "
         "default $MLFLOW_TRACKING_URI): parameters, per-round metrics with intervals, the "
         "held-out A/B report, the exported JSON. Needs pip install 'fusiontune[mlflow]'.")


def flat(d: Mapping[str, Any], prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists stay whole, as JSON text later)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flat(v, key + sep, sep))
        else:
            out[key] = v
    return out


def safe_url(url: str) -> str:
    """The storage URL without its password, fit for a tag."""
    import sqlalchemy

    try:
        return str(sqlalchemy.engine.make_url(url).render_as_string(hide_password=True))
    except Exception:  # not a SQLAlchemy URL: show it as given
        return url


def study_tags(url: str, study: Any) -> dict[str, Any]:
    """Tags naming the study: its storage URL (password hidden), name and trial numbers."""
    return {"fusiontune.storage": safe_url(url), "fusiontune.study": study.study_name,
            "fusiontune.n_trials": len(study.trials),
            "fusiontune.trials": _ids([t.number for t in study.trials])}


def log_search(uri: str | None, command: str, url: str, study: Any, search: Any,
               report: Any = None, exported: Any = None,
               extra: Mapping[str, Any] | None = None) -> None:
    """One tracked run of a ``search`` command: the study's settings and strategy as params,
    its rounds as per-round metrics (none for a Pareto study: it has a front), and (export)
    the held-out report and the JSON. Nothing is computed when no run is tracked."""
    if not uri:
        return
    from tuner.study import history

    rounds = history(study, search) if len(study.directions) == 1 else []
    with tracked_run(uri, command, run_name=f"{command} {study.study_name}") as tracker:
        assert tracker is not None
        tracker.params({"strategy": search.strategy, "seed": search.seed,
                        "population": search.population, **flat(extra or {}),
                        **flat(search.settings, "settings.")})
        tracker.tags(study_tags(url, study))
        tracker.rounds(rounds)
        if report is not None:
            tracker.report(report)
        if exported is not None:
            tracker.export(exported)


def log_demo(uri: str | None, config: Any, result: Any) -> None:
    """The demo as one tracked run: its config, CEM rounds, both picks' held-out reports
    (``holdout/<pick>/...``) and true values (``true/<pick>/<task>``), the export."""
    if not uri:
        return
    import dataclasses

    with tracked_run(uri, "demo", run_name=f"demo seed {config.seed}") as tracker:
        assert tracker is not None
        tracker.params(flat({k: str(v) if k == "out_dir" else v
                             for k, v in dataclasses.asdict(config).items()}))
        tracker.tags({"fusiontune.storage": safe_url(result.storage),
                      "fusiontune.study": config.study_name,
                      "fusiontune.trials": f"0-{config.rounds * config.population - 1}"})
        tracker.rounds(result.rounds)
        tracker.metrics({f"true/control/{t}": v for t, v in result.control_truth.items()})
        for p in result.picks:
            tracker.report(p.holdout, f"holdout/{p.name}")
            tracker.metrics({f"true/{p.name}/{t}": v for t, v in p.truth.items()}
                            | {f"true/{p.name}/objective": p.true_objective(config.objective)})
        tracker.metrics({f"ranker/{t}/{k}": v for t, m in result.ranker_metrics.items()
                         for k, v in dataclasses.asdict(m).items()})
        tracker.export(result.exported)


def log_ranker(uri: str | None, checkpoint: Any, fingerprint: str,
               meta: Mapping[str, Any]) -> None:
    """``ranker train`` as one tracked run: its run file as params, each epoch's history
    (step = epoch), the valid and test metrics, the checkpoint and fingerprints as tags."""
    if not uri:
        return
    with tracked_run(uri, "ranker train", run_name=f"ranker train {checkpoint}") as tracker:
        assert tracker is not None
        tracker.params(flat(meta["config"]))
        tracker.tags({"fusiontune.checkpoint": str(checkpoint),
                      "fusiontune.model_fingerprint": fingerprint,
                      "fusiontune.data_fingerprint": meta["data_fingerprint"]})
        for record in meta["history"]:
            tracker.metrics({k: v for k, v in flat(record, sep="/").items()
                             if isinstance(v, int | float) and k != "epoch"},
                            step=int(record.get("epoch", 0)))
        tracker.metrics({f"{split}/{k}": v for split, m in meta["metrics"].items()
                         for k, v in flat(m, sep="/").items() if isinstance(v, int | float)}
                        | {"best_epoch": meta["best_epoch"], "train_rows": meta["train_rows"]})


def _ids(numbers: Sequence[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1-3,7"``: every trial number, short enough for a tag."""
    spans: list[list[int]] = []
    for i in sorted(numbers):
        if spans and spans[-1][1] == i - 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    return ",".join(f"{a}-{b}" if b > a else str(a) for a, b in spans)
