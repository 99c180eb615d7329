"""Tracked runs: a command's parameters, rounds, A/B report and export, logged to MLflow.

MLflow is an optional extra (``pip install 'fusiontune[mlflow]'``), imported only when a
run is tracked. Everything goes through :class:`Tracker`, one MLflow run, so the commands
say *what* to log and this module says *how*.

Example:
    >>> with tracked_run(None, "search run") as tracker:  # no URI: nothing is logged
    ...     tracker is None
    True
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simulator.report import ABReport
    from tuner.picks.export import ExportedWeights
    from tuner.study import RoundSummary

__all__ = ["EXPERIMENT", "INSTALL_HINT", "Tracker", "mlflow_installed", "tracked_run"]

EXPERIMENT = "fusiontune"
INSTALL_HINT = "--mlflow needs MLflow: pip install 'fusiontune[mlflow]'"
_MAX_PARAM = 6000  # MLflow's limit on a param value's length


class Tracker:
    """One MLflow run of a command.

    Args:
        client: an ``mlflow.MlflowClient``.
        run_id: the run to log into (kept open until :func:`tracked_run` ends it).
    """

    def __init__(self, client: Any, run_id: str) -> None:
        self.client = client
        self.run_id = run_id

    def params(self, params: Mapping[str, Any]) -> None:
        """Log parameters; nested values become JSON text (cut at MLflow's limit)."""
        from mlflow.entities import Param

        items = [Param(k, _text(v)) for k, v in params.items() if v is not None]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params a batch
            self.client.log_batch(self.run_id, params=items[i:i + 100])

    def tags(self, tags: Mapping[str, Any]) -> None:
        """Set tags (e.g. the study's storage URL and trial ids)."""
        for k, v in tags.items():
            if v is not None:
                self.client.set_tag(self.run_id, k, _text(v))

    def metrics(self, values: Mapping[str, float], step: int = 0) -> None:
        """Log finite metrics at ``step`` (a non-finite one is left out: MLflow refuses
        NaN in some stores, and a missing point reads better than a fake one)."""
        from mlflow.entities import Metric

        now = _now_ms()
        items = [Metric(k, float(v), now, step) for k, v in values.items()
                 if v is not None and math.isfinite(float(v))]
        for i in range(0, len(items), 1000):
            self.client.log_batch(self.run_id, metrics=items[i:i + 1000])

    def rounds(self, rounds: Sequence[RoundSummary]) -> None:
        """Per round (step = round): ``best_value``, ``best_low``, ``best_high``, the
        strategy's pick ``pick/<task>`` and spread ``sigma/<task>``, ``n_trials``."""
        for r in rounds:
            values: dict[str, float] = {"best_value": r.best_value, "best_low": r.best_low,
                                        "best_high": r.best_high, "n_trials": r.n_trials}
            values.update({f"pick/{t}": v for t, v in r.mean.items()})
            values.update({f"sigma/{t}": v for t, v in r.sigma.items()})
            self.metrics(values, step=r.round)
        trials = [r.best_trial for r in rounds if r.best_trial >= 0]
        if trials:
            self.tags({"fusiontune.best_trials": ",".join(map(str, trials))})

    def report(self, report: ABReport, prefix: str = "holdout") -> None:
        """The A/B report: ``<prefix>/<metric>/{treatment,control,lift}`` with ``_low`` and
        ``_high`` (its 95% intervals), and the request count."""
        values: dict[str, float] = {f"{prefix}/n_requests": report.n_requests}
        for row in report.rows:
            for side in ("treatment", "control", "lift"):
                est = getattr(row, side)
                key = f"{prefix}/{row.metric}/{side}"
                values.update({key: est.value, f"{key}_low": est.low, f"{key}_high": est.high})
        self.metrics(values)

    def export(self, exported: ExportedWeights, name: str = "weights.json") -> None:
        """The exported JSON as an artifact, its weights as params and its pick as tags."""
        self.client.log_dict(self.run_id, json.loads(exported.to_json()), name)
        self.params({f"export.{t}": w for t, w in exported.weight_map.items()})
        self.tags({"fusiontune.pick": exported.pick,
                   "fusiontune.exported_trial": exported.trial_number})


def mlflow_installed() -> bool:
    """Whether MLflow can be imported (checked without importing it)."""
    import importlib.util

    return importlib.util.find_spec("mlflow") is not None


@contextmanager
def tracked_run(uri: str | None, command: str, experiment: str = EXPERIMENT,
                run_name: str | None = None) -> Iterator[Tracker | None]:
    """An MLflow run for ``command`` at ``uri``, or ``None`` when ``uri`` is empty.

    The run ends FINISHED, or FAILED if the command raised. A ``file:`` URI needs no
    server; MLflow 3 refuses that store unless ``MLFLOW_ALLOW_FILE_STORE`` is set, so it is
    set for the asked-for file store (a user's own setting wins).

    Raises:
        ValueError: ``uri`` given and MLflow is not installed (one line, with the fix).
    """
    if not uri:
        yield None
        return
    try:
        import mlflow
    except ImportError:
        raise ValueError(INSTALL_HINT) from None
    if uri.startswith("file:") or "://" not in uri:
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp is not None else client.create_experiment(experiment)
    run = client.create_run(exp_id, run_name=run_name, tags={"fusiontune.command": command})
    tracker = Tracker(client, run.info.run_id)
    try:
        yield tracker
    except BaseException:
        client.set_terminated(run.info.run_id, "FAILED")
        raise
    client.set_terminated(run.info.run_id, "FINISHED")


def _text(v: Any) -> str:
    s = v if isinstance(v, str) else json.dumps(v, default=str, sort_keys=True)
    return s[:_MAX_PARAM]


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)
