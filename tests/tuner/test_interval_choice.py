"""The interval method is a study setting: chosen at creation, stored, and kept on resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from simulator.intervals import BootstrapInterval, NormalInterval, StudentizedBootstrapInterval
from tests.tuner.conftest import DemoFiles
from tuner.cli import main
from tuner.evaluation.search_data import SearchSettings, Workspace, make_interval
from tuner.study import load_search


def test_make_interval_names_every_method_and_refuses_others() -> None:
    assert isinstance(make_interval("bootstrap", 100, 1), BootstrapInterval)
    assert isinstance(make_interval("studentized", 100, 1), StudentizedBootstrapInterval)
    assert isinstance(make_interval("normal"), NormalInterval)
    with pytest.raises(ValueError, match="valid: \\['bootstrap', 'studentized', 'normal'\\]"):
        make_interval("bca")


def test_settings_store_the_interval_only_when_it_is_not_the_default() -> None:
    base = dict(logs="l", scores="s", objective={"click": 1.0})
    assert "interval" not in SearchSettings(**base).to_dict()  # old studies compare equal
    chosen = SearchSettings(**base, interval="normal")
    assert SearchSettings.from_dict(chosen.to_dict()) == chosen
    with pytest.raises(ValueError, match="unknown interval 'wide'"):
        SearchSettings(**base, interval="wide")


def test_cli_interval_is_used_stored_and_kept(tmp_path: Path, demo_files: DemoFiles) -> None:
    runner = CliRunner()
    db = tmp_path / "i.db"
    rows = {}
    for name in ("bootstrap", "normal"):
        args = demo_files.new_study_args(db, name, rounds=1, population=4)
        result = runner.invoke(main, [*args, "--interval", name], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        out = runner.invoke(main, ["search", "history", "--storage", str(db), "--study", name,
                                   "--trials", "--json"])
        rows[name] = json.loads(out.output)
    # same trials (same seed), other intervals around the same values
    assert [r["value"] for r in rows["normal"]] == [r["value"] for r in rows["bootstrap"]]
    assert [r["ci_low"] for r in rows["normal"]] != [r["ci_low"] for r in rows["bootstrap"]]
    for r in rows["normal"]:
        assert r["ci_low"] < r["value"] < r["ci_high"]
    settings = SearchSettings.from_dict(load_search(f"sqlite:///{db}", "normal")[1].settings)
    assert settings.interval == "normal"
    assert isinstance(Workspace(settings).replay("search").interval, NormalInterval)
    clash = runner.invoke(main, ["search", "run", "--storage", str(db), "--study", "normal",
                                 "--interval", "bootstrap", "--rounds", "1", "--no-progress"])
    assert clash.exit_code == 1 and "--interval bootstrap conflicts" in clash.output
