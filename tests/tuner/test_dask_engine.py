"""The Dask engine gives the trials of the embedded engines, with 1 and 2 worker processes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.tuner.test_streamed_search import FIELDS, OBJECTIVE, WEIGHTS, _settings, write_files
from tuner.evaluation.search_data import Workspace
from tuner.evaluation.streamed import StreamedWorkspace

pytest.importorskip("distributed", reason="the Dask engine needs dask[distributed] (the dask "
                                          "and dev extras)")

pytestmark = pytest.mark.slow  # a LocalCluster of worker processes starts in seconds


@pytest.mark.parametrize("interval", ["bootstrap", "studentized"])
def test_dask_with_1_and_2_workers_equals_streamed_and_in_memory(tmp_path: Path,
                                                                 interval: str) -> None:
    from tuner.evaluation.dask_engine import sharded_replay, start_client

    logs, scores = write_files(tmp_path / "whole", 1)
    want = Workspace(_settings(logs, scores, interval=interval)).replay("search").evaluate(
        WEIGHTS, OBJECTIVE)
    logs, scores = write_files(tmp_path / "p3", 3)
    ws = StreamedWorkspace(_settings(logs, scores, interval=interval))
    streamed = ws.replay("search").evaluate(WEIGHTS, OBJECTIVE)
    from distributed import LocalCluster

    for workers in (1, 2):
        # 1: a cluster the engine starts; 2: an existing one it joins by its address
        cluster = None if workers == 1 else LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        replay = sharded_replay(ws, start_client(workers, None if cluster is None
                                                 else cluster.scheduler_address))
        try:
            got = replay.evaluate(WEIGHTS, OBJECTIVE)
            assert len(replay.client.scheduler_info()["workers"]) == workers
        finally:
            replay.close()
            if cluster is not None:
                cluster.close()
        for f in FIELDS:
            np.testing.assert_allclose(getattr(got, f), getattr(want, f), rtol=1e-9,
                                       atol=1e-12, err_msg=f"{workers} workers: {f}")
            np.testing.assert_allclose(getattr(got, f), getattr(streamed, f), rtol=1e-12,
                                       atol=1e-15, err_msg=f"{workers} workers: {f}")


def test_search_run_engine_dask_writes_the_trials_of_the_embedded_run(tmp_path: Path) -> None:
    import optuna

    from tests.tuner.test_streamed_cli import _run

    logs, scores = write_files(tmp_path, 3)
    values = []
    for name, extra in (("embedded", ()), ("dask", ("--engine", "dask", "--dask-workers",
                                                    "2"))):
        db = tmp_path / f"{name}.db"
        code, out = _run(logs, scores, db, *extra)
        assert code == 0, out
        study = optuna.load_study(study_name="s", storage=f"sqlite:///{db}")
        values.append([t.value for t in study.trials])
    np.testing.assert_allclose(values[1], values[0], rtol=1e-9)


def test_search_run_engine_dask_reports_read_start_replay_and_database(tmp_path: Path) -> None:
    from tests.tuner.test_streamed_cli import run_timed

    logs, scores = write_files(tmp_path, 3)
    db = tmp_path / "s.db"
    timing = run_timed(logs, scores, db, "--engine", "dask", "--dask-workers", "2")
    for part in ("read_s", "engine_start_s", "replay_s", "database_s"):
        assert timing[part] > 0, timing
    # an existing study on Dask: its files indexed again in the driver (read)
    again = run_timed(logs, scores, db, "--engine", "dask", "--dask-workers", "1", rounds=4)
    assert again["read_s"] > 0 and again["engine_start_s"] > 0, again
