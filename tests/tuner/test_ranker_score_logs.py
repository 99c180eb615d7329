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


# --- a partitioned score dataset ---------------------------------------------------------------


def _hive(logs: Path) -> list[Path]:
    """Move the log's files into date partitions (``date=2026-11-2<i>/part-0.parquet``)."""
    moved = []
    for i, file in enumerate(sorted(logs.glob("*.parquet"))):
        target = logs / f"date=2026-11-2{i}" / "part-0.parquet"
        target.parent.mkdir()
        file.rename(target)
        moved.append(target.relative_to(logs))
    return moved


def _relative(folder: Path) -> list[Path]:
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())


def test_a_folder_log_gives_one_score_file_per_log_file_at_its_path(tmp_path: Path) -> None:
    logs, _ = _world(tmp_path)
    layout = _hive(logs)
    ckpt = str(tmp_path / "ranker.pt")
    out = tmp_path / "scored"
    code, stdout, output = _score("--checkpoint", ckpt, "--logs", str(logs), "--out", str(out),
                                  "--chunk-rows", "900", "--json")
    assert code == 0, output
    report = json.loads(stdout)
    assert report["partitioned"] is True
    assert _relative(out) == sorted(layout)  # the log's layout, hive folders included
    single = tmp_path / "scores.parquet"
    code, stdout, output = _score("--checkpoint", ckpt, "--logs", str(logs), "--out",
                                  str(single), "--chunk-rows", "900", "--json")
    assert code == 0 and json.loads(stdout)["partitioned"] is False, output
    one = pq.read_table(single)
    parts = []
    for rel in layout:  # each file: its log file's rows in their order
        log_file, score_file = pq.read_table(logs / rel), pq.read_table(out / rel)
        assert score_file.column_names == one.column_names
        assert score_file.schema.metadata == one.schema.metadata
        for c in ("request_id", "item_id"):
            assert np.array_equal(score_file[c].to_numpy(), log_file[c].to_numpy())
        parts.append(score_file)
    joined = pa.concat_tables(parts)
    assert joined.num_rows == one.num_rows == report["rows"]
    for c in one.column_names:  # row for row the single table, to the last bit
        assert np.array_equal(joined[c].to_numpy(), one[c].to_numpy()), c


def _search(logs: Path, scores: Path, db: Path) -> list[tuple[float, float, float]]:
    result = CliRunner().invoke(main, [
        "search", "run", "--storage", str(db), "--study", "s", "--logs", str(logs),
        "--scores", str(scores), "--objective", "click=1,conversion=10,like=5", "--rounds", "2",
        "--population", "6", "--no-progress"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    import optuna

    trials = optuna.load_study(study_name="s", storage=f"sqlite:///{db}").trials
    return [(t.value, t.user_attrs["ci_low"], t.user_attrs["ci_high"]) for t in trials]


def test_search_run_on_the_partitioned_scores_gives_the_trials_of_the_single_table(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    logs, _ = _world(tmp_path)
    _hive(logs)
    ckpt = str(tmp_path / "ranker.pt")
    for out in ("scored", "scores.parquet"):
        code, _, output = _score("--checkpoint", ckpt, "--logs", str(logs), "--out",
                                 str(tmp_path / out))
        assert code == 0, output
    want = _search(logs, tmp_path / "scores.parquet", tmp_path / "single.db")

    def no_matching(*args: object) -> None:
        raise AssertionError("the partitioned scores were matched, not aligned")

    from tuner.evaluation.chunk_scores import ScoreCursors

    monkeypatch.setattr(ScoreCursors, "_match", no_matching)  # the fast path only
    got = _search(logs, tmp_path / "scored", tmp_path / "parts.db")
    assert len(got) == len(want) == 12
    np.testing.assert_allclose(np.array(got), np.array(want), rtol=1e-9, atol=0.0)


def test_a_partitioned_write_refused_half_way_leaves_out_as_it_was(tmp_path: Path) -> None:
    logs, _ = _world(tmp_path)
    ckpt = str(tmp_path / "ranker.pt")
    last = logs / "part-0002.parquet"
    t = pq.read_table(last)
    labels = t["label_click"].to_numpy().copy()
    labels[-1] = 2.0  # the last row of the last file: two score files are whole by then
    pq.write_table(t.set_column(t.schema.get_field_index("label_click"), "label_click",
                                pa.array(labels)), last)
    out = tmp_path / "scored"
    code, _, output = _score("--checkpoint", ckpt, "--logs", str(logs), "--out", str(out),
                             "--chunk-rows", "900")
    assert code == 1 and "part-0002.parquet" in output and "label_click" in output, output
    _no_table(tmp_path, out)
    out.mkdir()  # an older --out, overwritten with --force: kept as it was on a failure
    (out / "old.parquet").write_text("old")
    code, _, output = _score("--checkpoint", ckpt, "--logs", str(logs), "--out", str(out),
                             "--force")
    assert code == 1, output
    assert _relative(out) == [Path("old.parquet")]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_an_existing_out_is_refused_without_force(tmp_path: Path) -> None:
    logs, _ = _world(tmp_path, 60)
    ckpt = str(tmp_path / "ranker.pt")
    out = tmp_path / "scored"
    out.mkdir()
    (out / "keep.txt").write_text("keep")
    code, _, output = _score("--checkpoint", ckpt, "--logs", str(logs), "--out", str(out))
    assert code == 1, output
    assert output.strip() == f"Error: --out {out} exists; give --force to overwrite it"
    assert _relative(out) == [Path("keep.txt")]
    code, _, output = _score("--checkpoint", ckpt, "--logs", str(logs), "--out", str(out),
                             "--force")
    assert code == 0, output
    assert _relative(out) == _relative(logs)
    inside = logs / "scores"
    code, _, output = _score("--checkpoint", ckpt, "--logs", str(logs), "--out", str(inside))
    assert code == 1 and "lies inside the log folder" in output, output
    assert not inside.exists()
