"""``search export`` as a pipeline step: it never overwrites a file unless --force, --json
alone writes nothing, the file is 0644 under umask 022 and validates against the shipped
schema, and a pick that does not beat control on held-out requests is replaced by the
control weights unless --force-pick (issue #13).

Two studies on one toy log differ only in --control: with ``click=1,like=1`` the pick's
held-out lift interval reaches 0, with ``click=1,like=0`` (ignoring half the objective) the
pick beats it.
"""

from __future__ import annotations

import json
import os
import stat
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
from click.testing import Result

from tests.simulator.toylog import TASKS, make_toy
from tests.tuner.test_cli import assert_user_error, invoke
from tuner.evaluation.scores import ScoreTable
from tuner.picks.export import ExportedWeights

SCHEMA = json.loads(resources.files("tuner.picks").joinpath("weights.schema.json").read_text())
CONTROLS = {"weak": "click=1,like=0", "fair": "click=1,like=1"}


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SQLite file with studies 'weak' and 'fair' (1 round x 4 on a toy log of 2,000)."""
    folder = tmp_path_factory.mktemp("export_cli")
    traffic, _, scores = make_toy(0, n_requests=2000)
    logs = traffic.write(folder / "logs.parquet")
    table = ScoreTable(traffic.request_ids, traffic.item_ids,
                       {t: scores[..., i] for i, t in enumerate(TASKS)})
    score_path = table.write(folder / "scores.parquet")
    db = folder / "s.db"
    for name, control in CONTROLS.items():
        result = invoke(["search", "run", "--storage", str(db), "--study", name, "--logs",
                         str(logs), "--scores", str(score_path), "--objective", "click=1,like=1",
                         "--rounds", "1", "--population", "4", "--holdout-fraction", "0.5",
                         "--control", control, "--no-progress"])
        assert result.exit_code == 0, result.output
    return db


def _export(db: Path, study: str, *args: str) -> Result:
    return invoke(["search", "export", "--storage", str(db), "--study", study, *args])


def test_a_pick_that_beats_control_is_exported(studies: Path, tmp_path: Path) -> None:
    out = tmp_path / "w.json"
    old = os.umask(0o022)
    try:
        result = _export(studies, "weak", "--out", str(out))
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    assert "does not beat" not in result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    data = json.loads(out.read_text())
    jsonschema.validate(data, SCHEMA)
    assert data["pick"] == "strategy" and data["extra"]["lift_vs_control"]["low"] > 0
    assert data["fusion"]["pinned"] == "click" and data["fusion"]["clip_low"] == 1e-7


def test_a_pick_that_does_not_beat_control_exports_control(studies: Path,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "w.json"
    result = _export(studies, "fair", "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    assert "the strategy pick does not beat the control weights" in result.stderr
    assert "--force-pick" in result.stderr
    exported = ExportedWeights.read(out)
    assert ExportedWeights.from_json(result.stdout) == exported
    jsonschema.validate(json.loads(out.read_text()), SCHEMA)
    assert exported.pick == "control" and exported.trial_number is None
    assert exported.weight_map == {"click": 1.0, "like": 1.0}
    refused = exported.extra["refused_pick"]
    assert refused["pick"] == "strategy" and refused["lift_vs_control"]["low"] <= 0
    assert refused["weights"] != exported.weight_map
    control = exported.extra["holdout_metrics"]["objective"]
    assert exported.objective["value"] == control["value"]

    forced = _export(studies, "fair", "--out", str(out), "--force", "--force-pick")
    assert forced.exit_code == 0, forced.output
    assert "does not beat" not in forced.stderr
    picked = ExportedWeights.read(out)
    assert picked.pick == "strategy" and picked.weight_map == refused["weights"]


def test_an_existing_file_is_kept_unless_force(studies: Path, tmp_path: Path) -> None:
    out = tmp_path / "w.json"
    out.write_text("keep me")
    assert_user_error(_export(studies, "weak", "--out", str(out)), str(out), "--force")
    assert out.read_text() == "keep me"
    assert _export(studies, "weak", "--out", str(out), "--force").exit_code == 0
    assert ExportedWeights.read(out).study_name == "weak"


def test_json_alone_writes_nothing(studies: Path, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("weights.json").write_text("an older export")  # --json alone does not even look
    result = _export(studies, "weak", "--json")
    assert result.exit_code == 0, result.output
    assert ExportedWeights.from_json(result.stdout).study_name == "weak"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights.json"]
    assert Path("weights.json").read_text() == "an older export"
    Path("weights.json").unlink()
    assert _export(studies, "weak").exit_code == 0  # no --json: the default weights.json
    assert ExportedWeights.read("weights.json").study_name == "weak"
