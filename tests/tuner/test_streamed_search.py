"""A streamed search gives the numbers of one held in memory, however the log is cut."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.worldkit import TASKS, make_log
from tuner.evaluation.objective import FusionObjective
from tuner.evaluation.scores import ScoreTable
from tuner.evaluation.search_data import SearchSettings, Workspace
from tuner.evaluation.streamed import StreamedWorkspace, write_partitioned

LOG = make_log(seed=5, n_requests=1200)
WEIGHTS = np.random.default_rng(3).uniform(0.0, 3.0, size=(5, 3))
OBJECTIVE = {"click": 1.0, "conversion": 10.0, "like": 5.0}
FIELDS = ("value", "low", "high", "ess", "events")


def _table() -> ScoreTable:
    t = LOG.traffic
    return ScoreTable(t.request_ids, t.item_ids,
                      {k: LOG.scores[..., i] for i, k in enumerate(TASKS)})


def write_files(tmp: Path, partitions: int, hive: bool = False) -> tuple[Path, Path]:
    """The test log and its scores as ``partitions`` files each (1: single files)."""
    if partitions == 1 and not hive:
        logs, scores = tmp / "logs.parquet", tmp / "scores.parquet"
        LOG.traffic.write(logs)
        _table().write(scores)
        return logs, scores
    write_partitioned(LOG.traffic, _table(), tmp / "logs", tmp / "scores", partitions, hive)
    return tmp / "logs", tmp / "scores"


def _settings(logs: Path, scores: Path, **kw: object) -> SearchSettings:
    return SearchSettings(logs=str(logs), scores=str(scores), objective=OBJECTIVE,
                          n_bootstrap=60, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("estimator", "interval"), [
    ("snips", "bootstrap"), ("ips", "studentized"), ("dr", "normal"), ("snips", "studentized"),
])
def test_streamed_equals_in_memory_with_1_3_and_7_partitions(
        tmp_path: Path, estimator: str, interval: str) -> None:
    logs, scores = write_files(tmp_path / "whole", 1)
    whole = Workspace(_settings(logs, scores, estimator=estimator, interval=interval))
    want = whole.replay("search").evaluate(WEIGHTS, OBJECTIVE)
    for parts, hive in ((1, False), (3, True), (7, False)):
        logs, scores = write_files(tmp_path / f"p{parts}", parts, hive)
        settings = _settings(logs, scores, estimator=estimator, interval=interval,
                             stream=parts == 1)
        ws = StreamedWorkspace(settings, chunk_rows=4000)  # chunks cut inside the files too
        assert ws.check()["search"] == whole.parts["search"].n_requests
        got = ws.replay("search").evaluate(WEIGHTS, OBJECTIVE)
        assert got.metrics == want.metrics and got.n == want.n
        for f in FIELDS:
            np.testing.assert_allclose(getattr(got, f), getattr(want, f), rtol=1e-9,
                                       atol=1e-12, err_msg=f"{parts} partitions: {f}")


def test_streamed_objective_with_guardrails_matches_in_memory(tmp_path: Path) -> None:
    logs, scores = write_files(tmp_path / "whole", 1)
    kw = {"guardrails": {"click": 0.01}, "control": [1.0, 1.0, 1.0]}
    mem = FusionObjective.for_workspace(Workspace(_settings(logs, scores, **kw)))
    logs, scores = write_files(tmp_path / "p3", 3)
    streamed = FusionObjective.for_workspace(StreamedWorkspace(_settings(logs, scores, **kw)))
    (a, ra), (b, rb) = mem.population(WEIGHTS), streamed.population(WEIGHTS)
    assert ra == rb
    np.testing.assert_allclose(b.low, a.low, rtol=1e-9)


def test_pooled_dr_is_refused_in_streamed_mode(tmp_path: Path) -> None:
    logs, scores = write_files(tmp_path, 3)
    with pytest.raises(ValueError, match="'pooled_dr' needs the whole log at once"):
        StreamedWorkspace(_settings(logs, scores, estimator="pooled_dr"))


@pytest.mark.parametrize("formula", ["multiplicative", "additive", "rank"])
def test_a_ragged_log_streamed_equals_it_held_whole(tmp_path: Path, formula: str) -> None:
    # each chunk is padded to its own widest request, the whole log to the widest of all;
    # padding is never ranked, whatever the formula makes of its scores
    from tuner.cli._world import generate_dataset

    generate_dataset("marketplace", 1500, (10, 40), 3, tmp_path)
    settings = _settings(tmp_path / "logs", tmp_path / "scores", formula=formula)
    whole = Workspace(settings)  # a folder held whole (read_whole)
    assert whole.traffic.n_candidates == 40
    want = whole.replay("search").evaluate(WEIGHTS, OBJECTIVE)
    got = StreamedWorkspace(settings, chunk_rows=5000).replay("search").evaluate(WEIGHTS,
                                                                                 OBJECTIVE)
    for f in FIELDS:
        np.testing.assert_allclose(getattr(got, f), getattr(want, f), rtol=1e-9, atol=1e-12,
                                   err_msg=f)


def _reordered_scores(scores: Path, out: Path, files: int, seed: int) -> None:
    """The score table of ``scores`` rewritten as ``files`` files cut at other requests,
    each request's candidates shuffled (rows still sorted by request)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.concat_tables(pq.read_table(f) for f in sorted(scores.glob("*.parquet")))
    req = table.column("request_id").to_numpy()
    key = np.random.default_rng(seed).permutation(len(req))
    table = table.take(np.lexsort((key, req)))  # by request, candidates in a random order
    cuts = np.searchsorted(table.column("request_id").to_numpy(),
                           np.quantile(req, np.linspace(0, 1, files + 1)[1:-1]))
    out.mkdir(parents=True)
    for i, (a, b) in enumerate(zip([0, *cuts], [*cuts, len(req)], strict=True)):
        pq.write_table(table.slice(a, b - a), out / f"s{i}.parquet")


def test_scores_in_another_candidate_order_and_cut_give_bit_identical_numbers(
        tmp_path: Path) -> None:
    logs, scores = write_files(tmp_path / "p3", 3)
    _reordered_scores(scores, tmp_path / "shuffled", 2, seed=4)
    runs = []
    for folder in (scores, tmp_path / "shuffled"):
        ws = StreamedWorkspace(_settings(logs, folder), chunk_rows=3000)
        ws.check()
        runs.append(ws.replay("search").evaluate(WEIGHTS, OBJECTIVE))
    for f in FIELDS:
        assert np.array_equal(getattr(runs[0], f), getattr(runs[1], f)), f


def test_a_log_read_in_decreasing_request_order_still_gets_its_scores(tmp_path: Path) -> None:
    # the log's files hold decreasing request ids, so each chunk is before the last one
    # read from the score file: its cursor starts over, and the numbers do not change
    logs, scores = write_files(tmp_path / "p3", 3)
    back = tmp_path / "backwards"
    back.mkdir()
    for i, file in enumerate(sorted(logs.glob("*.parquet"))[::-1]):
        (back / f"part-{i:04d}.parquet").write_bytes(file.read_bytes())
    want = StreamedWorkspace(_settings(logs, scores)).replay("search").evaluate(WEIGHTS,
                                                                              OBJECTIVE)
    got = StreamedWorkspace(_settings(back, scores), chunk_rows=3000).replay(
        "search").evaluate(WEIGHTS, OBJECTIVE)
    for f in FIELDS:
        np.testing.assert_allclose(getattr(got, f), getattr(want, f), rtol=1e-9, atol=1e-12,
                                   err_msg=f)


def test_a_pass_in_request_order_reads_each_score_file_once_without_matching_rows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tuner.evaluation import chunk_scores

    cursors: list[chunk_scores.ScoreCursors] = []
    made = chunk_scores.ScoreCursors.__init__

    def keep(self: chunk_scores.ScoreCursors, *args: object) -> None:
        made(self, *args)  # type: ignore[arg-type]
        cursors.append(self)

    def never(*args: object) -> None:
        raise AssertionError("rows matched by sorting although they are the log's rows")

    monkeypatch.setattr(chunk_scores.ScoreCursors, "__init__", keep)
    monkeypatch.setattr(chunk_scores.ScoreCursors, "_match", never)
    logs, scores = write_files(tmp_path, 3)
    ws = StreamedWorkspace(_settings(logs, scores), chunk_rows=2000)  # 4 chunks a file
    ws.check()
    ws.replay("search").evaluate(WEIGHTS, OBJECTIVE)
    assert len(cursors) == 2 and all(c.restarts == 0 for c in cursors)
    # the files passed were let go: only the last one's cursor (and its batch) is held
    assert all(list(c._cursors) == [2] and c._closed == {0, 1} for c in cursors)


def test_later_passes_skip_the_value_checks_until_a_file_changes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A search's generations after the first do not check the same rows again (the
    numbers stay bit-identical), and a file changed between passes is checked again."""
    import os

    import pyarrow as pa
    import pyarrow.parquet as pq

    import simulator.logs
    from simulator.logs import LogValidationError

    logs, scores = write_files(tmp_path, 3)
    replay = StreamedWorkspace(_settings(logs, scores), chunk_rows=4000).replay("search")
    calls: list[int] = []
    real = simulator.logs.check_traffic

    def counted(traffic: object) -> None:
        calls.append(1)
        real(traffic)  # type: ignore[arg-type]

    monkeypatch.setattr(simulator.logs, "check_traffic", counted)
    first = replay.evaluate(WEIGHTS, OBJECTIVE)
    assert calls  # the first pass checks every chunk it builds
    calls.clear()
    second = replay.evaluate(WEIGHTS, OBJECTIVE)
    assert not calls  # the same files again: not checked again
    for f in FIELDS:
        assert np.array_equal(getattr(second, f), getattr(first, f)), f
    last = logs / "part-0002.parquet"  # changed between passes: checked, and refused
    t = pq.read_table(last)
    labels = t["label_click"].to_numpy().copy()
    labels[-1] = 2.0
    stat = os.stat(last)
    pq.write_table(t.set_column(t.schema.get_field_index("label_click"), "label_click",
                                pa.array(labels)), last)
    os.utime(last, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    with pytest.raises(LogValidationError, match="part-0002.parquet.*task 'click' is binary"):
        replay.evaluate(WEIGHTS, OBJECTIVE)
