"""``--mlflow URI``: search run, search export and demo log to a real local MLflow file store,
read back with MLflow's own client."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.tuner.test_cli import assert_user_error, invoke

if TYPE_CHECKING:
    from tests.tuner.conftest import DemoFiles

try:
    import mlflow
except ImportError:  # CI installs it with .[dev]; a local checkout may not have it
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("mlflow is not installed (pip install 'fusiontune[mlflow]')",
                allow_module_level=True)


def _runs(uri: str) -> list[Any]:
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("fusiontune")
    assert exp is not None
    return list(client.search_runs([exp.experiment_id], order_by=["attributes.start_time"]))


def test_search_run_and_export_are_tracked(demo_files: DemoFiles, tmp_path: Path) -> None:
    """search run logs params, per-round metrics with intervals and the pick, tags the
    storage and trials; search export also logs the held-out report and the JSON."""
    uri = (tmp_path / "mlruns").as_uri()
    db = tmp_path / "s.db"
    result = invoke([*demo_files.new_study_args(db), "--mlflow", uri])
    assert result.exit_code == 0, result.output
    out = tmp_path / "w.json"
    result = invoke(["search", "export", "--storage", str(db), "--study", "s",
                     "--out", str(out), "--force-pick", "--mlflow", uri])
    assert result.exit_code == 0, result.output

    run, export = _runs(uri)
    client = mlflow.MlflowClient(uri)
    assert run.info.status == "FINISHED"
    assert run.data.tags["fusiontune.command"] == "search run"
    assert run.data.tags["fusiontune.storage"] == f"sqlite:///{db.resolve()}"
    assert run.data.tags["fusiontune.study"] == "s"
    assert run.data.tags["fusiontune.trials"] == "0-15"
    assert run.data.params["strategy"] == "cem"
    assert run.data.params["population"] == "8"
    assert run.data.params["settings.estimator"] == "snips"
    best = client.get_metric_history(run.info.run_id, "best_value")
    low = client.get_metric_history(run.info.run_id, "best_low")
    high = client.get_metric_history(run.info.run_id, "best_high")
    assert [m.step for m in best] == [0, 1]
    assert all(lo.value <= b.value <= hi.value
               for lo, b, hi in zip(low, best, high, strict=True))
    assert [m.step for m in client.get_metric_history(run.info.run_id, "pick/like")] == [0, 1]

    saved = json.loads(out.read_text())
    assert export.data.tags["fusiontune.command"] == "search export"
    assert export.data.tags["fusiontune.pick"] == saved["pick"] == "strategy"
    m = export.data.metrics
    assert m["holdout/objective/treatment"] == pytest.approx(saved["objective"]["value"])
    assert (m["holdout/objective/treatment_low"] <= m["holdout/objective/treatment"]
            <= m["holdout/objective/treatment_high"])
    assert {"holdout/objective/lift_low", "holdout/click/control"} <= set(m)
    assert [a.path for a in client.list_artifacts(export.info.run_id)] == ["weights.json"]
    local = client.download_artifacts(export.info.run_id, "weights.json", str(tmp_path))
    assert json.loads(Path(local).read_text()) == saved


def test_demo_is_tracked_through_the_environment(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """MLFLOW_TRACKING_URI alone tracks the demo: both picks' held-out and true values."""
    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    result = invoke(["demo", "--out", str(tmp_path / "d"), "--requests", "2000", "--rounds",
                     "1", "--population", "4", "--epochs", "1", "--no-progress", "--json"])
    assert result.exit_code == 0, result.output
    (run,) = _runs(uri)
    m = run.data.metrics
    assert {"best_value", "holdout/strategy/objective/treatment",
            "holdout/best_trial/objective/lift_high", "true/strategy/objective",
            "true/control/click"} <= set(m)
    assert run.data.params["rounds"] == "1"
    assert run.data.tags["fusiontune.study"] == "demo"


def test_mlflow_missing_is_one_line_before_any_work(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """--mlflow without MLflow installed: one line with the install command, no study."""
    monkeypatch.setattr("tuner.cli._track.mlflow_installed", lambda: False)
    db = tmp_path / "s.db"
    result = invoke(["search", "run", "--storage", str(db), "--study", "s", "--mlflow",
                     (tmp_path / "mlruns").as_uri()])
    assert_user_error(result, "pip install 'fusiontune[mlflow]'")
    assert not db.exists()


def test_ranker_train_record_is_tracked(tmp_path: Path) -> None:
    """What ``ranker train --mlflow`` logs from its checkpoint meta (training needs the
    KuaiRand slice, so the meta is made up here): the run file as params, each epoch's
    history by step, valid/test metrics, fingerprints as tags."""
    from tuner.cli._track import log_ranker

    uri = (tmp_path / "mlruns").as_uri()
    meta = {"config": {"model": {"kind": "mmoe", "n_experts": 4}, "train": {"epochs": 2}},
            "data_fingerprint": "d0", "train_rows": 1000, "best_epoch": 2,
            "history": [{"epoch": 1, "train_loss": 0.7, "valid": {"click": {"auc": 0.6}}},
                        {"epoch": 2, "train_loss": 0.6, "valid": {"click": {"auc": 0.65}}}],
            "metrics": {"valid": {"click": {"auc": 0.65}}, "test": {"click": {"auc": 0.64}}}}
    log_ranker(uri, tmp_path / "m.pt", "m0", meta)
    (run,) = _runs(uri)
    client = mlflow.MlflowClient(uri)
    assert run.data.params["model.kind"] == "mmoe"
    assert run.data.params["train.epochs"] == "2"
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id,
                                                                 "train_loss")] == [(1, 0.7),
                                                                                    (2, 0.6)]
    assert run.data.metrics["valid/click/auc"] == 0.65  # the last epoch's, and the final
    assert run.data.metrics["test/click/auc"] == 0.64
    assert run.data.tags["fusiontune.model_fingerprint"] == "m0"
    assert run.data.tags["fusiontune.command"] == "ranker train"
