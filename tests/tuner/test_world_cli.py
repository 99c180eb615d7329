"""``fusiontune world generate``: a partitioned dataset that a streamed search reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from click.testing import CliRunner

from simulator.datasets import ParquetDataset
from tuner.cli import main
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
