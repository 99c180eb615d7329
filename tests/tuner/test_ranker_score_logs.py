"""``fusiontune ranker score --logs``: a log dataset scored chunk by chunk, the table
equal to scoring the log held whole, memory set by the chunk, nothing written on a fault."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from ranker import CategoricalFeature, TaskSpec, build_mmoe, save_checkpoint
from tuner.cli import main
from tuner.cli._world import generate_dataset
from tuner.evaluation import ranker_scoring
from tuner.evaluation.dataset_io import read_whole
from tuner.evaluation.ranker_scoring import default_feature_specs, score_dataset, score_traffic
from tuner.evaluation.scores import ScoreTable

TASKS = [TaskSpec("click"), TaskSpec("like")]


def _world(tmp: Path, requests: int = 400) -> tuple[Path, object]:
    """A ragged 3-file log and an (untrained) ranker of its features, saved."""
    generate_dataset("marketplace", requests, (10, 40), 3, tmp)
    whole, _ = read_whole(str(tmp / "logs"), str(tmp / "scores"))
    model = build_mmoe(default_feature_specs(whole), TASKS, seed=3)
    save_checkpoint(tmp / "ranker.pt", model, {"data": "test"})
    return tmp / "logs", model


def _score(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["ranker", "score", "--no-progress", *args])
    return result.exit_code, result.stdout, result.output


def test_a_streamed_score_table_equals_scoring_the_log_held_whole(tmp_path: Path) -> None:
    logs, model = _world(tmp_path)
    out = tmp_path / "scores.parquet"
    code, stdout, output = _score("--checkpoint", str(tmp_path / "ranker.pt"), "--logs",
                                  str(logs), "--out", str(out), "--chunk-rows", "900", "--json")
    assert code == 0, output
    whole, _ = read_whole(str(logs), str(tmp_path / "scores"))
    report = json.loads(stdout)
    assert report["rows"] == int(whole.candidate_counts.sum()) == pq.read_table(out).num_rows
    assert report["tasks"] == ["click", "like"]
    table = pq.read_table(out)
    assert table.column_names == ["request_id", "item_id", "p_click", "p_like"]
    assert table.schema.metadata[b"fusiontune.checkpoint"] == report["fingerprint"].encode()
    # the log's rows in its order: what the streamed replay aligns without matching
    cols = whole.to_columns()
    assert np.array_equal(table["request_id"].to_numpy(), cols["request_id"])
    assert np.array_equal(table["item_id"].to_numpy(), cols["item_id"])
    want = score_traffic(model, whole).aligned(whole)  # type: ignore[arg-type]
    got = ScoreTable.read(out).aligned(whole)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-12)


def test_the_log_is_scored_a_chunk_at_a_time(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    logs, model = _world(tmp_path)
    sizes: list[int] = []
    real = ranker_scoring.score_traffic

    def spy(m: object, traffic: object) -> ScoreTable:
        sizes.append(int(traffic.candidate_counts.sum()))  # type: ignore[attr-defined]
        return real(m, traffic)  # type: ignore[arg-type]

    monkeypatch.setattr(ranker_scoring, "score_traffic", spy)
    rows = score_dataset(model, logs, tmp_path / "s.parquet", chunk_rows=1000)  # type: ignore[arg-type]
    assert sum(sizes) == rows and len(sizes) >= rows // 1000
    assert max(sizes) < 1000 + 40  # a chunk ends at the first request boundary past 1000


def test_peak_memory_does_not_grow_with_the_log(tmp_path: Path) -> None:
    peaks = []
    for requests in (500, 2000):
        logs, model = _world(tmp_path / str(requests), requests)
        tracemalloc.start()
        score_dataset(model, logs, tmp_path / f"{requests}.parquet", chunk_rows=1500)  # type: ignore[arg-type]
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    # 4x the rows; the peak (numpy arrays of one chunk and the model's batch) stays put
    assert peaks[1] < 1.3 * peaks[0], peaks


def _no_table(folder: Path, out: Path) -> None:
    assert not out.exists()
    assert not [f for f in folder.iterdir() if f.name.startswith(f".{out.name}")]


def test_a_log_refused_half_way_leaves_no_table(tmp_path: Path) -> None:
    logs, _ = _world(tmp_path)
    last = logs / "part-0002.parquet"
    t = pq.read_table(last)
    labels = t["label_click"].to_numpy().copy()
    labels[-1] = 2.0  # the last row of the last file: found after two files were scored
    pq.write_table(t.set_column(t.schema.get_field_index("label_click"), "label_click",
                                pa.array(labels)), last)
    out = tmp_path / "scores.parquet"
    code, _, output = _score("--checkpoint", str(tmp_path / "ranker.pt"), "--logs", str(logs),
                             "--out", str(out), "--chunk-rows", "900")
    assert code == 1
    assert "part-0002.parquet" in output and "label_click" in output, output
    assert len(output.strip().splitlines()) == 1, output
    _no_table(tmp_path, out)


def test_a_ranker_that_needs_a_feature_the_log_lacks_is_refused(tmp_path: Path) -> None:
    logs, _ = _world(tmp_path)
    other = build_mmoe([CategoricalFeature("author_id", 10)], TASKS)
    save_checkpoint(tmp_path / "other.pt", other, {})
    out = tmp_path / "scores.parquet"
    code, _, output = _score("--checkpoint", str(tmp_path / "other.pt"), "--logs", str(logs),
                             "--out", str(out))
    assert code == 1
    assert "the ranker needs feature(s) ['author_id'] that log" in output, output
    _no_table(tmp_path, out)


def test_logs_with_a_kuairand_split_or_config_is_refused(tmp_path: Path) -> None:
    logs, _ = _world(tmp_path, 60)
    code, _, output = _score("--checkpoint", str(tmp_path / "ranker.pt"), "--logs", str(logs),
                             "--split", "valid", "--out", str(tmp_path / "s.parquet"))
    assert code == 1 and "--config and --split choose KuaiRand data" in output, output
