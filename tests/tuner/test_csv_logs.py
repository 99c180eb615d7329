"""A CSV log through the CLI: its examination curve comes from ``--examination``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import optuna
import pyarrow as pa
import pyarrow.csv as pacsv

from simulator.logs import LoggedTraffic
from tests.tuner.test_cli import assert_user_error, invoke
from tuner.evaluation.search_data import SearchSettings
from tuner.study import stored_settings

if TYPE_CHECKING:
    from tests.tuner.conftest import DemoFiles


def _csv_log(demo_files: DemoFiles, tmp_path: Path) -> tuple[Path, str]:
    traffic = LoggedTraffic.read(demo_files.logs)
    path = tmp_path / "logs.csv"
    pacsv.write_csv(pa.table(traffic.to_columns()), path)
    assert traffic.examination is not None
    return path, ",".join(repr(float(x)) for x in traffic.examination)


def _args(demo_files: DemoFiles, db: Path, study: str, logs: Path) -> list[str]:
    args = demo_files.new_study_args(db, study, rounds=1, population=8)
    return [str(logs) if a == str(demo_files.logs) else a for a in args]


def _values(db: Path, study: str) -> list[float]:
    loaded = optuna.load_study(study_name=study, storage=f"sqlite:///{db}")
    return [t.value for t in loaded.trials]


def test_a_csv_log_needs_the_examination_option(demo_files: DemoFiles, tmp_path: Path) -> None:
    csv, _ = _csv_log(demo_files, tmp_path)
    db = tmp_path / "s.db"
    result = invoke(_args(demo_files, db, "csv", csv))
    assert_user_error(result, "carries no examination curve (a CSV log cannot)",
                      "'search run --examination 1,", "[data] examination = [1, ")
    assert not db.exists() or "csv" not in optuna.get_all_study_names(f"sqlite:///{db}")
    bad = invoke([*_args(demo_files, db, "csv", csv), "--examination", "1,x"])
    assert_user_error(bad, "--examination '1,x': give one probability in (0, 1] per slot")
    short = invoke([*_args(demo_files, db, "csv", csv), "--examination", "1,0.5"])
    assert_user_error(short, "examination [1.0, 0.5] has 2 value(s) but log", "slots")


def test_a_csv_log_runs_resumes_and_matches_its_parquet(demo_files: DemoFiles,
                                                       tmp_path: Path) -> None:
    csv, curve = _csv_log(demo_files, tmp_path)
    db = tmp_path / "s.db"
    result = invoke([*_args(demo_files, db, "csv", csv), "--examination", curve])
    assert result.exit_code == 0, result.output
    parquet = invoke(demo_files.new_study_args(db, "pq", rounds=1, population=8))
    assert parquet.exit_code == 0, parquet.output
    assert _values(db, "csv") == _values(db, "pq")  # the same log, the same curve

    loaded = optuna.load_study(study_name="csv", storage=f"sqlite:///{db}")
    stored = SearchSettings.from_dict(stored_settings(loaded))
    assert stored.examination == [float(x) for x in curve.split(",")]
    again = invoke(["search", "run", "--storage", str(db), "--study", "csv", "--rounds", "2",
                    "--no-progress"])  # from the database alone
    assert again.exit_code == 0, again.output
    assert len(_values(db, "csv")) == 16
    other = invoke(["search", "run", "--storage", str(db), "--study", "csv",
                    "--examination", "1,0.5,0.4,0.3,0.2", "--no-progress"])
    assert_user_error(other, "--examination [1.0, 0.5, 0.4, 0.3, 0.2] conflicts with the "
                             "study's stored")


def test_a_search_file_gives_the_examination(demo_files: DemoFiles, tmp_path: Path) -> None:
    csv, curve = _csv_log(demo_files, tmp_path)
    values = ", ".join(curve.split(","))
    config = tmp_path / "search.toml"
    config.write_text(f"""
[data]
logs = "{csv}"
scores = "{demo_files.scores}"
examination = [{values}]
[objective]
click = 1.0
[search]
space = "fusion"
rounds = 1
population = 4
""")
    db = tmp_path / "s.db"
    result = invoke(["search", "run", "--storage", str(db), "--study", "f", "--config",
                     str(config), "--no-progress"])
    assert result.exit_code == 0, result.output
    stored = SearchSettings.from_dict(stored_settings(
        optuna.load_study(study_name="f", storage=f"sqlite:///{db}")))
    assert stored.examination == [float(x) for x in curve.split(",")]
    config.write_text(config.read_text().replace(f"examination = [{values}]",
                                                 "examination = [1, 2]"))
    bad = invoke(["search", "run", "--storage", str(db), "--study", "g", "--config",
                  str(config), "--no-progress"])
    assert_user_error(bad, "[data] examination.1 must be <= 1.0, got 2")
