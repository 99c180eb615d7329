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


def test_a_candidate_range_is_refused_until_worlds_draw_ragged_requests(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["world", "generate", "--requests", "10",
                                       "--candidates", "10:40", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "ragged generation needs the worlds' ragged-request option" in result.output
