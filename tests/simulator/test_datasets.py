"""Partitioned Parquet datasets: the layout rules, each refused with its file and row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from simulator.datasets import DatasetError, ParquetDataset, dataset_files


def _write(path: Path, ids: list[int], **extra: list[float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = {"request_id": np.array(ids, np.int64), "x": np.arange(len(ids), dtype=np.float64)}
    cols.update({k: np.array(v) for k, v in extra.items()})
    pq.write_table(pa.table(cols), path)


def test_a_folder_with_hive_partitions_is_read_in_chunks_of_whole_requests(
        tmp_path: Path) -> None:
    _write(tmp_path / "date=2026-11-30" / "a.parquet", [1, 1, 2, 2, 2, 5])
    _write(tmp_path / "date=2026-12-01" / "b.parquet", [7, 7, 8])
    ds = ParquetDataset(tmp_path, batch_rows=2)
    assert [f.parent.name for f in ds.files] == ["date=2026-11-30", "date=2026-12-01"]
    index = ds.scan()
    assert index.n_requests == 5 and index.rows.tolist() == [6, 3]
    chunks = [c["request_id"].tolist() for c, _ in ds.chunks(rows=3)]
    assert chunks == [[1, 1], [2, 2, 2], [5], [7, 7], [8]]
    assert all("date" not in c for c, _ in ds.chunks(rows=3))  # no partition column


@pytest.mark.parametrize(("files", "pattern"), [
    ({"a.parquet": [1, 1, 2], "b.parquet": [2, 3]},
     r"b.parquet: request 2 also has rows in .*a.parquet; a request's rows must all lie in "
     "one file"),
    ({"a.parquet": [1, 2, 1]},
     r"a.parquet: row 2: request 1 appears again after other requests; a request's rows "
     "must be contiguous"),
    ({"a.parquet": [1, 3, 2, 2]},
     r"a.parquet: row 2: request 2 comes after a larger request id; requests must be in "
     "increasing request_id order"),
])
def test_layout_faults_are_refused_with_file_and_row(tmp_path: Path, files: dict[str, list[int]],
                                                     pattern: str) -> None:
    for name, ids in files.items():
        _write(tmp_path / name, ids)
    with pytest.raises(DatasetError, match=pattern):
        ParquetDataset(tmp_path, batch_rows=2).scan()


def test_a_schema_that_differs_between_files_is_refused(tmp_path: Path) -> None:
    _write(tmp_path / "a.parquet", [1, 2])
    _write(tmp_path / "b.parquet", [3, 4], y=[0.0, 1.0])
    with pytest.raises(DatasetError, match=r"b.parquet: its schema differs from .*a.parquet's:"
                                           r" extra column\(s\) \['y'\]"):
        ParquetDataset(tmp_path).scan()


def test_missing_paths_and_empty_folders(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="dataset not found"):
        dataset_files(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="holds no Parquet files"):
        dataset_files(tmp_path / "empty")


def test_a_cursor_reads_a_file_once_for_increasing_ranges_and_restarts_for_earlier_ones(
        tmp_path: Path) -> None:
    ids = [1, 1, 2, 4, 4, 4, 6, 9, 9, 12]
    _write(tmp_path / "a.parquet", ids)
    cursor = ParquetDataset(tmp_path, batch_rows=3).cursor(0)
    got = []
    for low, high in [(0, 1), (2, 3), (4, 8), (10, 11), (12, 20), (21, 30)]:
        cols, row = cursor.take(low, high)
        got.append((cols["request_id"].tolist(), cols["x"].tolist(), row))
    assert got == [([1, 1], [0.0, 1.0], 0), ([2], [2.0], 2),
                   ([4, 4, 4, 6], [3.0, 4.0, 5.0, 6.0], 3), ([], [], 9), ([12], [9.0], 9),
                   ([], [], 10)]
    assert cursor.restarts == 0
    cols, row = cursor.take(3, 6)  # before the last range: read again from the start
    assert (cols["request_id"].tolist(), row, cursor.restarts) == ([4, 4, 4, 6], 3, 1)
