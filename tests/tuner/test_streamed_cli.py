"""``search run`` on a folder log: a bad dataset is refused before the study has a trial."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import optuna
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from tests.tuner.test_streamed_search import write_files
from tuner.cli import main

OBJECTIVE = "click=1,conversion=10,like=5"


def _run(logs: Path, scores: Path, db: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, [
        "search", "run", "--storage", str(db), "--study", "s", "--logs", str(logs),
        "--scores", str(scores), "--objective", OBJECTIVE, "--rounds", "1", "--population",
        "4", "--no-progress", *extra])
    return result.exit_code, result.output


def _trials(db: Path) -> int:
    if not db.exists():
        return 0
    url = f"sqlite:///{db}"
    names = optuna.get_all_study_names(url)
    return sum(len(optuna.load_study(study_name=n, storage=url).trials) for n in names)


def _split_request(logs: Path, scores: Path) -> None:
    """The first request of part 1 gets rows in part 0 too."""
    a, b = pq.read_table(logs / "part-0000.parquet"), pq.read_table(logs / "part-0001.parquet")
    first = b.filter(pc.equal(b["request_id"], b["request_id"][0]))
    pq.write_table(pa.concat_tables([a, first]), logs / "part-0000.parquet")


def _unsorted(logs: Path, scores: Path) -> None:
    a = pq.read_table(logs / "part-0000.parquet")
    pq.write_table(a.take(list(range(a.num_rows - 1, -1, -1))), logs / "part-0000.parquet")


def _unscored(logs: Path, scores: Path) -> None:
    s = pq.read_table(scores / "part-0001.parquet")
    pq.write_table(s.slice(1), scores / "part-0001.parquet")


def _schema(logs: Path, scores: Path) -> None:
    a = pq.read_table(logs / "part-0002.parquet")
    pq.write_table(a.append_column("feature_extra", pa.array([1.0] * a.num_rows)),
                   logs / "part-0002.parquet")


@pytest.mark.parametrize(("spoil", "pattern"), [
    (_split_request, r"part-0001.parquet: request \d+ also has rows in .*part-0000.parquet"),
    (_unsorted, r"part-0000.parquet: row 20: request \d+ comes after a larger request id"),
    (_unscored, r"score table .*scores/part-0001.parquet: row 0: request 400 \(log "
                r".*logs/part-0001.parquet row 0\): the log's item\(s\) \d+ have no score; "
                r"every logged candidate needs exactly one score row"),
    (_schema, r"part-0002.parquet: its schema differs from .*part-0000.parquet's: extra "
              r"column\(s\) \['feature_extra'\]"),
])
def test_a_bad_dataset_is_refused_before_any_trial(
        tmp_path: Path, spoil: Callable[[Path, Path], None], pattern: str) -> None:
    logs, scores = write_files(tmp_path, 3)
    spoil(logs, scores)
    db = tmp_path / "s.db"
    code, out = _run(logs, scores, db)
    assert code != 0
    assert re.search(pattern, out), out
    assert _trials(db) == 0


def test_a_folder_log_runs_a_search(tmp_path: Path) -> None:
    logs, scores = write_files(tmp_path, 3, hive=True)
    db = tmp_path / "s.db"
    code, out = _run(logs, scores, db)
    assert code == 0, out
    assert _trials(db) == 4


def test_a_pareto_search_refuses_a_streamed_log_with_a_message(tmp_path: Path) -> None:
    logs, scores = write_files(tmp_path, 3)
    db = tmp_path / "p.db"
    result = CliRunner().invoke(main, [
        "search", "pareto", "--storage", str(db), "--study", "p", "--logs", str(logs),
        "--scores", str(scores), "--metrics", "click,like", "--rounds", "1", "--population",
        "4", "--no-progress"])
    assert result.exit_code == 1, result.output
    assert "is streamed (a folder, or --stream): this command needs the whole log" in \
        result.output
    assert _trials(db) == 0


PARTS = ("read_s", "engine_start_s", "replay_s", "database_s", "workers_s", "other_s")


def run_timed(logs: Path, scores: Path, db: Path, *extra: str, rounds: int = 2
              ) -> dict[str, float]:
    """``search run --json`` with its stage lines on; the ``timing`` it reports, checked:
    every part present and non-negative, the parts at most the wall time, and the same
    figures on the stderr line."""
    import json

    result = CliRunner().invoke(main, [
        "search", "run", "--storage", str(db), "--study", "s", "--logs", str(logs),
        "--scores", str(scores), "--objective", OBJECTIVE, "--rounds", str(rounds),
        "--population", "4", "--json", *extra], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [r["round"] for r in report["rounds"]] == [rounds - 2, rounds - 1]
    timing = report["timing"]
    assert sorted(timing) == sorted((*PARTS, "wall_s")), timing
    assert all(timing[k] >= 0 for k in (*PARTS, "wall_s")), timing
    assert sum(timing[k] for k in PARTS) <= timing["wall_s"] + 0.01, timing  # 3-decimal rounding
    line = re.search(r"^time: (\d+\.\d) s wall = .*(\d+\.\d) s replay \+ (\d+\.\d) s database",
                     result.stderr, re.M)
    assert line is not None, result.stderr
    assert float(line[1]) == pytest.approx(timing["wall_s"], abs=0.051)
    assert float(line[3]) == pytest.approx(timing["database_s"], abs=0.051)
    return timing  # type: ignore[no-any-return]


def test_search_run_reports_its_wall_time_split_into_read_replay_and_database(
        tmp_path: Path) -> None:
    logs, scores = write_files(tmp_path, 3)
    db = tmp_path / "s.db"
    new = run_timed(logs, scores, db)
    assert new["read_s"] > 0 and new["replay_s"] > 0 and new["database_s"] > 0, new
    assert new["engine_start_s"] == 0 and new["workers_s"] == 0, new
    # an existing study: its files opened again (read), two more rounds
    more = run_timed(logs, scores, db, rounds=4)
    assert more["read_s"] > 0 and more["replay_s"] > 0 and more["database_s"] > 0, more
