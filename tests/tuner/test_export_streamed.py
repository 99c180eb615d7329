"""``search export`` and ``search compare`` of a streamed study give the numbers of the same
log held whole, and never hold the log whole to do it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tests.tuner.test_streamed_search import write_files
from tuner.cli import main
from tuner.evaluation import search_data
from tuner.evaluation.search_data import HOLDOUT, SearchSettings, Workspace
from tuner.picks.control_test import one_sided_test

OBJECTIVE = "click=1,conversion=10,like=5"


def _cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def _run(logs: Path, scores: Path, db: Path, *extra: str) -> None:
    _cli("search", "run", "--storage", str(db), "--study", "s", "--logs", str(logs),
         "--scores", str(scores), "--objective", OBJECTIVE, "--rounds", "3", "--population",
         "8", "--no-progress", *extra)


def _export(db: Path, out: Path, *extra: str) -> dict:
    _cli("search", "export", "--storage", str(db), "--study", "s", "--out", str(out), *extra)
    data: dict = json.loads(out.read_text())
    return data


def _compare(db: Path, *extra: str) -> dict:
    data: dict = json.loads(_cli("search", "compare", "--storage", str(db), "--study", "s",
                                 "--top", "3", "--json", *extra))
    return data


def _never_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    def held_whole(*args: object, **kw: object) -> None:
        raise AssertionError("a streamed study's export or compare read the log whole")

    monkeypatch.setattr(search_data.Workspace, "__init__", held_whole)


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, Path]:
    """The same search on the log as one file (held whole) and as 4 files (streamed)."""
    tmp = tmp_path_factory.mktemp("export")
    logs, scores = write_files(tmp / "whole", 1)
    whole = tmp / "whole.db"
    _run(logs, scores, whole)
    folder, folder_scores = write_files(tmp / "parts", 4)
    streamed = tmp / "stream.db"
    _run(folder, folder_scores, streamed)
    return whole, streamed, logs, scores


def test_a_streamed_export_equals_the_export_of_the_log_held_whole(
        studies: tuple[Path, Path, Path, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    whole_db, stream_db, _, _ = studies
    want = _export(whole_db, tmp_path / "whole.json", "--control-test", "two-sided",
                   "--force-pick")
    _never_whole(monkeypatch)
    got = _export(stream_db, tmp_path / "stream.json", "--control-test", "two-sided",
                  "--force-pick")
    assert got["weights"] == pytest.approx(want["weights"], rel=1e-9)
    for key in ("value", "low", "high"):
        assert got["objective"][key] == pytest.approx(want["objective"][key], rel=1e-9)
        assert got["extra"]["lift_vs_control"][key] == pytest.approx(
            want["extra"]["lift_vs_control"][key], rel=1e-9)
        for metric, row in want["extra"]["holdout_metrics"].items():
            assert got["extra"]["holdout_metrics"][metric][key] == pytest.approx(
                row[key], rel=1e-9), metric
    assert got["extra"]["holdout_requests"] == want["extra"]["holdout_requests"]
    assert got["extra"]["search_split_value"] == pytest.approx(
        want["extra"]["search_split_value"], rel=1e-9)
    test, want_test = got["extra"]["control_test"], want["extra"]["control_test"]
    assert test["rule"] == "two-sided"
    assert test["lower_bound"] == pytest.approx(want_test["lower_bound"], rel=1e-9)
    # the files' own fingerprint: a streamed study stores none, and the log is not hashed
    assert got["data_fingerprint"].startswith("files:") and len(got["data_fingerprint"]) == 22


def test_a_streamed_one_sided_test_uses_the_study_estimator_of_the_log_held_whole(
        studies: tuple[Path, Path, Path, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    whole_db, stream_db, logs, scores = studies
    pick = np.asarray(list(_export(whole_db, tmp_path / "whole.json",
                                   "--force-pick")["weights"].values()))
    settings = SearchSettings(logs=str(logs), scores=str(scores),
                              objective={"click": 1.0, "conversion": 10.0, "like": 5.0})
    want = one_sided_test(Workspace(settings).replay(HOLDOUT), pick, np.ones(3),
                          settings.objective)  # snips, the study's estimator
    _never_whole(monkeypatch)
    got = _export(stream_db, tmp_path / "stream.json", "--force-pick")["extra"][
        "control_test"]
    assert got["rule"] == "one-sided" and got["estimator"] == "snips"
    assert got["lower_bound"] == pytest.approx(want.lower_bound, rel=1e-9)
    assert got["lift"] == pytest.approx(want.lift, rel=1e-9)


def test_a_streamed_export_reads_the_held_out_split_once(
        studies: tuple[Path, Path, Path, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The A/B report and the one-sided control test share one pass over the held-out
    files; the search split is read once for the search-split column."""
    from tuner.evaluation.streamed import PartChunks

    _, stream_db, _, _ = studies
    passes: list[str] = []
    real = PartChunks.__call__

    def counted(self: PartChunks) -> object:
        passes.append(self.part)
        return real(self)

    monkeypatch.setattr(PartChunks, "__call__", counted)
    extra = _export(stream_db, tmp_path / "w.json", "--force-pick")["extra"]
    assert extra["control_test"]["rule"] == "one-sided"
    assert sorted(passes) == ["holdout", "search"]


def test_a_streamed_compare_equals_the_compare_of_the_log_held_whole(
        studies: tuple[Path, Path, Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    whole_db, stream_db, _, _ = studies
    want = _compare(whole_db, "--order", "estimate")
    _never_whole(monkeypatch)
    auto = _compare(stream_db)  # gated_dr cannot be made on a stream: ranked by the estimate
    assert auto["order"] == "snips" and "streamed" in auto["order_note"]
    got = _compare(stream_db, "--order", "estimate")
    assert [p["label"] for p in auto["picks"]] == [p["label"] for p in got["picks"]]
    assert [p["label"] for p in got["picks"]] == [p["label"] for p in want["picks"]]
    assert got["n_requests"] == want["n_requests"] and got["estimator"] == "snips"
    for g, w in zip(got["picks"], want["picks"], strict=True):
        for key in ("value", "low", "high"):
            assert g["estimate"][key] == pytest.approx(w["estimate"][key], rel=1e-9)
        assert g["search_value"] == pytest.approx(w["search_value"], rel=1e-9)
        if w["diff_vs_leader"] is None:
            assert g["diff_vs_leader"] is None
            continue
        for key in ("value", "low", "high"):  # the paired bootstrap: the same resamples
            assert g["diff_vs_leader"][key] == pytest.approx(w["diff_vs_leader"][key], rel=1e-9)
        # the streamed spread of a difference is its bootstrap's, the held-whole one the
        # delta method's: two estimates of one standard deviation
        assert g["p_leader_better"] == pytest.approx(w["p_leader_better"], abs=0.15)


def test_validated_export_of_a_streamed_study_is_refused_naming_what_works(
        studies: tuple[Path, Path, Path, Path], tmp_path: Path) -> None:
    _, stream_db, _, _ = studies
    out = tmp_path / "w.json"
    result = CliRunner().invoke(main, ["search", "export", "--storage", str(stream_db),
                                       "--study", "s", "--out", str(out), "--validated"])
    assert result.exit_code != 0
    assert "--validated needs the log held whole" in result.output
    assert "Export without --validated" in result.output
    assert not out.exists()


def test_a_streamed_segment_export_and_compare_equal_those_of_the_log_held_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.tuner.test_segments_streamed import _segmented

    logs, scores = write_files(tmp_path / "whole", 1)
    whole_db = tmp_path / "whole.db"
    _segmented(logs, scores, whole_db)
    want = _export(whole_db, tmp_path / "whole.json", "--force-pick", "--control-test",
                   "two-sided")
    want_cmp = _compare(whole_db)["personalised"]
    folder, folder_scores = write_files(tmp_path / "parts", 4)
    stream_db = tmp_path / "stream.db"
    _segmented(folder, folder_scores, stream_db)
    _never_whole(monkeypatch)
    got = _export(stream_db, tmp_path / "stream.json", "--force-pick", "--control-test",
                  "two-sided")
    got_cmp = _compare(stream_db)["personalised"]
    assert got["segments"]["feature"] == "user_activity"
    # the table's edges are the search's, and so is the guard's verdict on this log
    _close(got["segments"]["edges"], want["segments"]["edges"])
    assert len(got["segments"]["edges"]) == 2
    assert got["segments"]["personalised"] == want["segments"]["personalised"]
    # every policy's and every paired lift's value is the stratified estimate of the log
    # held whole; the intervals are the stratified bootstrap's, not the delta method's
    assert got_cmp["n_requests"] == want_cmp["n_requests"]
    for metric, row in want_cmp["metrics"].items():
        for name, w in row.items():
            g = got_cmp["metrics"][metric][name]
            assert g["value"] == pytest.approx(w["value"], rel=1e-9, abs=1e-12), (metric, name)
            width, want_width = g["high"] - g["low"], w["high"] - w["low"]
            assert g["low"] <= g["value"] <= g["high"]
            assert 0.6 * want_width < width < 1.6 * want_width, (metric, name)
    lift = got["segments"]["guard"]["lift_over_global"]
    assert lift["value"] == pytest.approx(
        want["segments"]["guard"]["lift_over_global"]["value"], rel=1e-9)


def _close(got: object, want: object, where: str = "") -> None:
    """Nested JSON equal: numbers to 1e-9 relative, the rest exactly."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), where
        for k in want:
            _close(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _close(g, w, f"{where}[{i}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12), where
    else:
        assert got == want, where


def test_a_streamed_study_with_a_delta_method_interval_is_refused_at_export(
        tmp_path: Path) -> None:
    """Its search needs no contrast; its A/B lift does, which sums cannot pair: the export
    says so, names the fix, and writes nothing."""
    folder, folder_scores = write_files(tmp_path / "parts", 3)
    db = tmp_path / "normal.db"
    _run(folder, folder_scores, db, "--interval", "normal")
    out = tmp_path / "w.json"
    result = CliRunner().invoke(main, ["search", "export", "--storage", str(db), "--study",
                                       "s", "--out", str(out)])
    assert result.exit_code != 0
    assert "percentile bootstrap (interval 'bootstrap')" in result.output
    assert "A/B lift" in result.output
    assert not out.exists()
