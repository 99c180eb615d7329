"""``search run --segment-by`` on a streamed log gives the segment studies of the log held
whole, trial for trial, and never holds the log whole to do it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
from click.testing import CliRunner

from tests.tuner.test_streamed_search import LOG, write_files
from tuner.cli import main
from tuner.evaluation import search_data
from tuner.segments import ATTR_SEGMENTS, request_feature, segment_study_name

OBJECTIVE = "click=1,conversion=10,like=5"


def _segmented(logs: Path, scores: Path, db: Path, *extra: str,
               by: str = "feature_user_activity") -> str:
    result = CliRunner().invoke(main, [
        "search", "run", "--storage", str(db), "--study", "s", "--logs", str(logs),
        "--scores", str(scores), "--objective", OBJECTIVE, "--rounds", "2", "--population",
        "6", "--no-progress", "--segment-by", by, "--segments", "3",
        "--segment-min-events", "5", *extra], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _values(db: Path, name: str) -> tuple[list[float], list[dict[str, float]]]:
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{db}")
    return [t.value for t in study.trials], [t.params for t in study.trials]  # type: ignore


def test_streamed_segments_equal_the_whole_logs(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    logs, scores = write_files(tmp_path / "whole", 1)
    whole_db = tmp_path / "whole.db"
    whole_out = _segmented(logs, scores, whole_db)
    url = f"sqlite:///{whole_db}"
    edges = optuna.load_study(study_name="s", storage=url).user_attrs[ATTR_SEGMENTS]["edges"]
    assert len(edges) == 2  # three segments were searched, none merged away

    def held_whole(*args: object, **kw: object) -> None:
        raise AssertionError("a streamed segmented search read the log whole")

    monkeypatch.setattr(search_data.Workspace, "__init__", held_whole)
    folder, folder_scores = write_files(tmp_path / "parts", 4)
    stream_db = tmp_path / "stream.db"
    out = _segmented(folder, folder_scores, stream_db)
    stored = optuna.load_study(study_name="s", storage=f"sqlite:///{stream_db}").user_attrs
    np.testing.assert_allclose(stored[ATTR_SEGMENTS]["edges"], edges)
    for s in range(3):
        name = segment_study_name("s", s)
        want, want_params = _values(whole_db, name)
        got, got_params = _values(stream_db, name)
        assert len(got) == 12 and got_params == want_params
        np.testing.assert_allclose(got, want, rtol=1e-9)
    # each segment's requests and pick, as reported, are the whole log's
    lines = [ln for ln in out.splitlines() if ln.startswith("  segment ")]
    assert len(lines) == 3 and lines == [ln for ln in whole_out.splitlines()
                                         if ln.startswith("  segment ")]
    sizes = [int(ln.split("): ")[1].split(" requests")[0]) for ln in lines]
    x = request_feature(LOG.traffic, "user_activity")
    assert 0.3 * len(x) < sum(sizes) < 0.7 * len(x)  # the search split: half the log


def test_streamed_kmeans_segments_equal_the_whole_logs(tmp_path: Path) -> None:
    by = "user_activity,user_segment"
    logs, scores = write_files(tmp_path / "whole", 1)
    whole_db, stream_db = tmp_path / "whole.db", tmp_path / "stream.db"
    whole_out = _segmented(logs, scores, whole_db, by=by)
    folder, folder_scores = write_files(tmp_path / "parts", 4)
    out = _segmented(folder, folder_scores, stream_db, by=by)
    stored = [optuna.load_study(study_name="s", storage=f"sqlite:///{db}"
                                ).user_attrs[ATTR_SEGMENTS] for db in (whole_db, stream_db)]
    assert stored[0]["kind"] == "kmeans" and stored[0] == stored[1]  # the same fit, exactly
    for s in range(len(stored[0]["centroids"])):
        name = segment_study_name("s", s)
        want, want_params = _values(whole_db, name)
        got, got_params = _values(stream_db, name)
        assert got_params == want_params
        np.testing.assert_allclose(got, want, rtol=1e-9)
    assert [ln for ln in out.splitlines() if ln.startswith("  segment ")] == \
        [ln for ln in whole_out.splitlines() if ln.startswith("  segment ")]
