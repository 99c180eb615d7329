"""``search personalise`` on a streamed log trains the model of the log held whole and
values it the same, without ever holding the log whole."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pytest
from click.testing import CliRunner

from tests.tuner.test_streamed_search import write_files
from tuner.cli import main
from tuner.evaluation import search_data

pytest.importorskip("torch")
OBJECTIVE = "click=1,conversion=10,like=5"


def _run(logs: Path, scores: Path, db: Path, *extra: str) -> None:
    result = CliRunner().invoke(main, [
        "search", "run", "--storage", str(db), "--study", "s", "--logs", str(logs),
        "--scores", str(scores), "--objective", OBJECTIVE, "--rounds", "2", "--population",
        "6", "--no-progress", *extra], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def _personalise(db: Path, out: Path) -> dict[str, object]:
    result = CliRunner().invoke(main, [
        "search", "personalise", "--storage", str(db), "--study", "s", "--features",
        "user_activity,user_segment", "--epochs", "12", "--patience", "4", "--no-progress",
        "--json", "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def _learned(db: Path) -> optuna.trial.FrozenTrial:
    return optuna.load_study(study_name="s/learned", storage=f"sqlite:///{db}").trials[-1]


def test_streamed_personalise_equals_the_whole_logs(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    logs, scores = write_files(tmp_path / "whole", 1)
    whole_db = tmp_path / "whole.db"
    _run(logs, scores, whole_db)
    whole = _personalise(whole_db, tmp_path / "whole_model")

    def held_whole(*args: object, **kw: object) -> None:
        raise AssertionError("a streamed personalise read the log whole")

    monkeypatch.setattr(search_data.Workspace, "__init__", held_whole)
    folder, folder_scores = write_files(tmp_path / "parts", 3)
    stream_db = tmp_path / "stream.db"
    _run(folder, folder_scores, stream_db)
    streamed = _personalise(stream_db, tmp_path / "stream_model")

    a, b = _learned(whole_db), _learned(stream_db)
    assert a.user_attrs["epochs_run"] == b.user_attrs["epochs_run"]
    model, want_model = b.user_attrs["model"], a.user_attrs["model"]
    assert model.keys() == want_model.keys()
    for name, got in model.items():  # the same model, trained the same
        if isinstance(got, list) and all(isinstance(v, (int, float, list)) for v in got):
            np.testing.assert_allclose(got, want_model[name], rtol=1e-6, atol=1e-9)
        else:
            assert got == want_model[name], name
    want_m = whole["learned"]["metrics"]  # type: ignore[index]
    got_m = streamed["learned"]["metrics"]  # type: ignore[index]
    for metric, arms in want_m.items():
        for arm in ("learned", "global", "control", "learned_minus_global"):
            np.testing.assert_allclose(got_m[metric][arm]["value"], arms[arm]["value"],
                                       rtol=1e-9, atol=1e-12)
    # the streamed lift's interval is the percentile bootstrap of the same requests: it
    # brackets the same point estimate, about as wide as the delta method's
    lift = got_m["objective"]["learned_minus_global"]
    want = want_m["objective"]["learned_minus_global"]
    assert lift["low"] <= lift["value"] <= lift["high"]
    width, want_width = lift["high"] - lift["low"], want["high"] - want["low"]
    assert 0.5 * want_width < width < 2.0 * want_width
    assert (tmp_path / "stream_model" / "weight_model.json").exists()


def test_streamed_personalise_refuses_a_delta_method_study(tmp_path: Path) -> None:
    folder, folder_scores = write_files(tmp_path / "parts", 3)
    db = tmp_path / "s.db"
    _run(folder, folder_scores, db, "--interval", "normal")
    result = CliRunner().invoke(main, [
        "search", "personalise", "--storage", str(db), "--study", "s", "--features",
        "user_activity", "--epochs", "2"])  # progress on: an epoch would be printed
    assert result.exit_code == 1
    assert "bootstrap" in result.output and "'normal'" in result.output
    assert "epoch" not in result.output  # refused before any training
    names = optuna.get_all_study_names(f"sqlite:///{db}")
    assert "s/learned" not in names or not optuna.load_study(
        study_name="s/learned", storage=f"sqlite:///{db}").trials  # nothing half-written
