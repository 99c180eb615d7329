"""Estimator hyperparameters are a study setting: given, validated, stored and kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from simulator.estimators import ClippedIPS, hyperparameters, make_estimator
from tests.tuner.conftest import DemoFiles
from tuner.cli import main
from tuner.evaluation.search_data import SearchSettings, Workspace, parse_estimator_params
from tuner.search_config import parse_search_config
from tuner.study import load_search


def test_make_estimator_takes_the_fields_of_its_class_and_names_them() -> None:
    assert hyperparameters("switch") == ("tau",) and hyperparameters("snips") == ()
    assert make_estimator("clipped_ips", {"clip": 5.0}) == ClippedIPS(clip=5.0)
    with pytest.raises(ValueError, match=r"'clipped_ips' has no parameter\(s\) \['tau'\]; "
                                         r"valid: \['clip'\]"):
        make_estimator("clipped_ips", {"tau": 5.0})


@pytest.mark.parametrize(("spec", "estimator", "pattern"), [
    ("tau=5", "clipped_ips", r"unknown parameter\(s\) \['tau'\]; valid: \['clip'\]"),
    ("clip=5", "snips", r"estimator 'snips' has no parameters; estimators with some: "
                        r"\['clipped_ips', "),
    ("clip=-1", "clipped_ips", r"--estimator-param: clipped_ips clip must be finite and > 0"),
    ("clip=5,clip=6", "clipped_ips", r"gives parameter 'clip' more than once"),
    ("clip", "clipped_ips", r"term 'clip' is not <parameter>=<number>, e.g. 'clip=20'"),
])
def test_bad_parameters_are_one_line_naming_the_valid_ones(spec: str, estimator: str,
                                                           pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        parse_estimator_params(spec, estimator)


def test_settings_store_params_only_when_given_and_inf_survives_json() -> None:
    base = dict(logs="l", scores="s", objective={"click": 1.0}, estimator="switch")
    assert "estimator_params" not in SearchSettings(**base).to_dict()  # old studies equal
    chosen = SearchSettings(**base, estimator_params={"tau": float("inf")})
    stored = json.loads(json.dumps(chosen.to_dict(), allow_nan=False))
    assert SearchSettings.from_dict(stored) == chosen
    with pytest.raises(ValueError, match=r"has no parameter\(s\) \['clip'\]; valid: \['tau'\]"):
        SearchSettings(**base, estimator_params={"clip": 5.0})


def test_search_file_reads_estimator_params() -> None:
    raw = {"data": {"logs": "/d/l.parquet", "scores": "/d/s.parquet"},
           "objective": {"click": 1.0},
           "search": {"estimator": "switch", "estimator_params": {"tau": 3}}}
    assert parse_search_config(raw).estimator_params == {"tau": 3.0}
    raw["search"]["estimator_params"] = {"clip": 3}
    with pytest.raises(ValueError, match=r"\[search\] estimator_params.*unknown parameter\(s\) "
                                         r"\['clip'\]; valid: \['tau'\]"):
        parse_search_config(raw)


def test_cli_param_changes_the_estimate_is_stored_and_survives_resume(
        tmp_path: Path, demo_files: DemoFiles) -> None:
    runner = CliRunner()
    db = tmp_path / "p.db"
    values = {}
    for name, extra in (("default", []), ("clip", ["--estimator-param", "clip=1.5"])):
        args = [*demo_files.new_study_args(db, name, rounds=1, population=4),
                "--estimator", "clipped_ips", *extra]
        result = runner.invoke(main, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        out = runner.invoke(main, ["search", "history", "--storage", str(db), "--study", name,
                                   "--trials", "--json"])
        values[name] = [r["value"] for r in json.loads(out.output)]
    assert values["clip"] != values["default"]  # same seed, same weights, other clipping
    # the database alone rebuilds the estimator with the stored parameter
    settings = SearchSettings.from_dict(load_search(f"sqlite:///{db}", "clip")[1].settings)
    assert settings.estimator_params == {"clip": 1.5}
    assert Workspace(settings).replay("search").estimator == ClippedIPS(clip=1.5)
    resumed = runner.invoke(main, ["search", "run", "--storage", str(db), "--study", "clip",
                                   "--rounds", "2", "--no-progress"], catch_exceptions=False)
    assert resumed.exit_code == 0, resumed.output
    again = SearchSettings.from_dict(load_search(f"sqlite:///{db}", "clip")[1].settings)
    assert again.estimator_params == {"clip": 1.5}
    clash = runner.invoke(main, ["search", "run", "--storage", str(db), "--study", "clip",
                                 "--estimator-param", "clip=3", "--rounds", "1",
                                 "--no-progress"])
    assert clash.exit_code == 1 and "--estimator-param {'clip': 3.0} conflicts" in clash.output


def test_cli_bad_param_is_refused_before_any_write(tmp_path: Path,
                                                    demo_files: DemoFiles) -> None:
    db = tmp_path / "b.db"
    result = CliRunner().invoke(main, [*demo_files.new_study_args(db), "--estimator",
                                       "switch", "--estimator-param", "clip=5"])
    assert result.exit_code == 1 and "valid: ['tau']" in result.output, result.output
    assert "Traceback" not in result.output and not db.exists()
    demo = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "d"), "--estimator",
                                     "snips", "--estimator-param", "clip=5"])
    assert demo.exit_code == 1 and "'snips' has no parameters" in demo.output
    assert not (tmp_path / "d" / "logs.parquet").exists()
