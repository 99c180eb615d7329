"""A study whose estimator pools over the population (``gated_dr``): workers that would
split a generation into chunks are refused before anything is written, workers that take
whole generations store what one process stores, and a resumed run equals one run."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from click.testing import CliRunner

from tests.tuner.conftest import DemoFiles
from tuner.cli import main


def _values(db: Path) -> list[tuple[int, float]]:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT t.number, v.value FROM trials t JOIN trial_values v "
                           "ON v.trial_id = t.trial_id ORDER BY t.number").fetchall()


def _run(args: list[str]) -> str:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return result.output


def test_chunked_workers_are_refused_before_any_write(tmp_path: Path,
                                                       demo_files: DemoFiles) -> None:
    db = tmp_path / "w.db"
    new = [*demo_files.new_study_args(db, population=8), "--estimator", "gated_dr"]
    refused = CliRunner().invoke(main, [*new, "--workers", "2"])
    assert refused.exit_code == 1, refused.output
    assert ("estimator 'gated_dr' pools each vector's estimate" in refused.output
            and "chunks of 4 of a generation's 8" in refused.output
            and "give --chunk 8" in refused.output), refused.output
    assert "Traceback" not in refused.output and not db.exists()
    _run([*new, "--rounds", "1"])
    before = _values(db)
    again = CliRunner().invoke(main, ["search", "run", "--storage", str(db), "--study", "s",
                                      "--rounds", "2", "--workers", "2", "--no-progress"])
    assert again.exit_code == 1 and "chunks of 4" in again.output, again.output
    worker = CliRunner().invoke(main, ["search", "worker", "--storage", str(db), "--study",
                                       "s", "--chunk", "3", "--until", "2"])
    assert worker.exit_code == 1 and "chunks of 3 of a generation's 8" in worker.output
    assert _values(db) == before


def test_whole_generation_workers_and_resume_equal_one_run(tmp_path: Path,
                                                           demo_files: DemoFiles) -> None:
    one, resumed, workers = tmp_path / "one.db", tmp_path / "resumed.db", tmp_path / "w.db"
    gated = ["--estimator", "gated_dr"]
    _run([*demo_files.new_study_args(one, rounds=3, population=8), *gated])
    _run([*demo_files.new_study_args(resumed, rounds=1, population=8), *gated])
    _run(["search", "run", "--storage", str(resumed), "--study", "s", "--rounds", "3",
          "--no-progress"])
    _run([*demo_files.new_study_args(workers, rounds=3, population=8), *gated,
          "--workers", "2", "--chunk", "8"])
    reference = _values(one)
    assert len(reference) == 24
    assert _values(resumed) == reference
    assert _values(workers) == reference
