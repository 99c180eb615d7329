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
