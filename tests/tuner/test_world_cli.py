"""``fusiontune world generate``: a partitioned dataset that a streamed search reads."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import optuna
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from simulator.datasets import ParquetDataset
from tuner.cli import main
from tuner.evaluation.dataset_io import dataset_meta
from tuner.evaluation.search_data import SearchSettings
from tuner.evaluation.streamed import StreamedWorkspace


def test_world_generate_writes_partitions_a_search_can_stream(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["world", "generate", "--requests", "900",
                                       "--partitions", "3", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert len(ParquetDataset(tmp_path / "logs").files) == 3
    index = ParquetDataset(tmp_path / "logs").scan()
    assert index.n_requests == 900 and index.n_rows == 900 * 20
    assert index.first_id.tolist() == [0, 300, 600]
    ws = StreamedWorkspace(SearchSettings(logs=str(tmp_path / "logs"),
                                          scores=str(tmp_path / "scores"),
                                          objective={"click": 1.0}, n_bootstrap=50))
    assert sum(ws.check().values()) == 900
    est = ws.replay("search").evaluate(np.ones((1, 3)), {"click": 1.0})
    assert np.isfinite(est.value).all()


def test_a_candidate_range_writes_ragged_requests_that_stream(tmp_path: Path) -> None:
    """--candidates 10:40: each request has its own number of rows, log and scores alike."""
    result = CliRunner().invoke(main, ["world", "generate", "--requests", "400",
                                       "--candidates", "10:40", "--partitions", "2",
                                       "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    logs = ParquetDataset(tmp_path / "logs").scan()
    scores = ParquetDataset(tmp_path / "scores").scan()
    assert logs.n_requests == 400 and 400 * 10 <= logs.n_rows <= 400 * 40
    assert scores.n_rows == logs.n_rows
    ws = StreamedWorkspace(SearchSettings(logs=str(tmp_path / "logs"),
                                          scores=str(tmp_path / "scores"),
                                          objective={"click": 1.0}, n_bootstrap=50))
    assert sum(ws.check().values()) == 400


def test_a_bad_candidate_count_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["world", "generate", "--requests", "10",
                                       "--candidates", "40:10", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "give a positive integer (e.g. 20) or a range low:high" in result.output
    assert not (tmp_path / "logs").exists()


def _generate(out: Path, *extra: str) -> None:
    result = CliRunner().invoke(main, ["world", "generate", "--requests", "1200",
                                       "--candidates", "5:15", "--partitions", "3",
                                       "--out", str(out), *extra])
    assert result.exit_code == 0, result.output


def _search(out: Path, db: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, [
        "search", "run", "--storage", str(db), "--study", "s", "--logs", str(out / "logs"),
        "--scores", str(out / "scores"), "--objective", "click=1,conversion=10,like=5",
        "--estimator", "slot_snips", "--rounds", "1", "--population", "4", "--no-progress",
        *extra])
    return result.exit_code, result.output


def _trials(db: Path) -> int:
    if not db.exists():
        return 0
    url = f"sqlite:///{db}"
    return sum(len(optuna.load_study(study_name=n, storage=url).trials)
               for n in optuna.get_all_study_names(url))


def _rewrite_metadata(file: Path, change: dict[bytes, bytes | None]) -> None:
    table = pq.read_table(file)
    meta = {**(table.schema.metadata or {}), **change}
    pq.write_table(table.replace_schema_metadata(
        {k: v for k, v in meta.items() if v is not None}), file)


def test_a_shown_only_world_log_streams_without_an_examination_option(tmp_path: Path) -> None:
    """--propensities shown: only ``pscore``, the page size in the metadata; a streamed
    search needs no --examination, and the slot-wise estimate is the full log's."""
    _generate(tmp_path / "full")
    _generate(tmp_path / "shown", "--propensities", "shown")
    shown = ParquetDataset(tmp_path / "shown" / "logs")
    names = shown.schema().names
    assert "pscore" in names and not any(n.startswith("pscore_") for n in names)
    assert dataset_meta(shown)[2] == 5
    code, out = _search(tmp_path / "shown", tmp_path / "s.db")
    assert code == 0, out
    assert _trials(tmp_path / "s.db") == 4
    weights = np.array([[1.0, 0.5, 2.0], [1.0, 3.0, 0.2]])
    values = []
    for name in ("full", "shown"):
        ws = StreamedWorkspace(SearchSettings(
            logs=str(tmp_path / name / "logs"), scores=str(tmp_path / name / "scores"),
            objective={"click": 1.0, "like": 5.0}, estimator="slot_snips", n_bootstrap=50))
        ws.check()
        values.append(ws.replay("search").evaluate(weights, {"click": 1.0, "like": 5.0}))
    np.testing.assert_allclose(values[1].value, values[0].value, rtol=1e-9)
    np.testing.assert_allclose(values[1].low, values[0].low, rtol=1e-9)
    assert (values[0].low < values[0].value).all()


def test_a_shown_only_log_without_a_curve_takes_its_page_size_from_the_metadata(
        tmp_path: Path) -> None:
    """No fusiontune.examination: --examination must give 5 values (fusiontune.slots)."""
    _generate(tmp_path, "--propensities", "shown")
    for file in ParquetDataset(tmp_path / "logs").files:
        _rewrite_metadata(file, {b"fusiontune.examination": None})
    code, out = _search(tmp_path, tmp_path / "a.db")
    assert code == 1 and "carries no examination curve" in out and "per slot (5)" in out, out
    code, out = _search(tmp_path, tmp_path / "b.db", "--examination", "1,0.6,0.4")
    assert code == 1 and "has 3 value(s) but log" in out and "has 5 slots" in out, out
    assert _trials(tmp_path / "a.db") == _trials(tmp_path / "b.db") == 0
    code, out = _search(tmp_path, tmp_path / "c.db", "--examination", "1,0.6,0.4,0.3,0.2")
    assert code == 0, out
    assert _trials(tmp_path / "c.db") == 4


@pytest.mark.parametrize(("change", "pattern"), [
    ({b"fusiontune.slots": b"6"}, r"part-0002.parquet: its Parquet metadata gives the page "
                                  r"size \(fusiontune.slots\) 6 but .*part-0000.parquet "
                                  r"gives 5"),
    ({b"fusiontune.examination": None},
     r"part-0002.parquet: its Parquet metadata gives the examination curve "
     r"\(fusiontune.examination\) none but .*part-0000.parquet gives \[1.0, "),
])
def test_files_whose_metadata_disagree_are_refused_with_the_file(
        tmp_path: Path, change: dict[bytes, bytes | None], pattern: str) -> None:
    _generate(tmp_path, "--propensities", "shown")
    _rewrite_metadata(tmp_path / "logs" / "part-0002.parquet", change)
    code, out = _search(tmp_path, tmp_path / "s.db")
    assert code == 1
    assert re.search(pattern, out), out
    assert len(out.strip().splitlines()) == 1
    assert _trials(tmp_path / "s.db") == 0
