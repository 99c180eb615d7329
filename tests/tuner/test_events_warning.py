"""The CLI warns when an estimate rests on too few effective label events.

A toy log (two frequent tasks) is written as Parquet with its score table; a
small one leaves every metric short of events, a large one none.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from simulator.replay import MIN_EVENTS
from tests.simulator.toylog import TASKS, make_toy
from tuner.cli import main
from tuner.cli._report_text import events_warnings
from tuner.evaluation.scores import ScoreTable


def _run(tmp_path: Path, n_requests: int) -> tuple[Result, Result, Path]:
    """``search run`` then ``search export --json --force-pick`` (the pick's own events, even
    where it does not beat control) on a toy log of ``n_requests``."""
    traffic, _, scores = make_toy(0, n_requests=n_requests)
    logs = traffic.write(tmp_path / "logs.parquet")
    table = ScoreTable(traffic.request_ids, traffic.item_ids,
                       {t: scores[..., i] for i, t in enumerate(TASKS)})
    score_path = table.write(tmp_path / "scores.parquet")
    db = tmp_path / "s.db"
    runner = CliRunner()
    run = runner.invoke(main, [
        "search", "run", "--storage", str(db), "--study", "s", "--logs", str(logs),
        "--scores", str(score_path), "--objective", "click=1,like=1", "--rounds", "1",
        "--population", "4", "--holdout-fraction", "0.5", "--interval", "normal",
        "--no-progress"], catch_exceptions=False)
    assert run.exit_code == 0, run.output
    export = runner.invoke(main, [
        "search", "export", "--storage", str(db), "--study", "s", "--out",
        str(tmp_path / "w.json"), "--json", "--force-pick"], catch_exceptions=False)
    assert export.exit_code == 0, export.output
    return run, export, db


def test_a_small_log_warns_for_every_metric_and_reports_events(tmp_path: Path) -> None:
    run, export, _ = _run(tmp_path, 40)
    assert "warning: objective of round 0's best trial" in run.stderr
    assert "on the search split" in run.stderr
    lines = [x for x in export.stderr.splitlines() if x.startswith("warning:")]
    assert [x.split()[1] for x in lines] == ["click", "like", "objective"]
    assert all(f"on the held-out split (< {MIN_EVENTS:g})" in x for x in lines)
    data = json.loads(export.stdout)  # the warnings stay off stdout
    events = {m: v["events"] for m, v in data["extra"]["holdout_metrics"].items()}
    assert set(events) == {"click", "like", "objective"}
    assert all(0 < e < MIN_EVENTS for e in events.values())
    assert data["extra"]["lift_vs_control"]["events"] <= events["objective"]


def test_a_large_log_does_not_warn(tmp_path: Path) -> None:
    run, export, db = _run(tmp_path, 4000)
    assert "warning" not in run.stderr and "warning" not in export.stderr
    data = json.loads(export.stdout)
    assert all(v["events"] >= MIN_EVENTS for v in data["extra"]["holdout_metrics"].values())
    history = CliRunner().invoke(main, ["search", "history", "--storage", str(db), "--study",
                                        "s", "--trials", "--json"], catch_exceptions=False)
    trials = json.loads(history.stdout)
    assert all(t["events"] >= MIN_EVENTS for t in trials)  # stored per trial, next to ess


@pytest.mark.parametrize(("events", "expected"), [
    ({"like": 12.4}, ["like"]),
    ({"like": 0.0, "click": MIN_EVENTS}, ["like"]),  # 0 events warns, the threshold does not
    ({"like": math.nan}, []),  # an estimator without events (dm) never warns
])
def test_events_warnings_name_the_thin_metrics(events: dict[str, float],
                                               expected: list[str]) -> None:
    lines = events_warnings(events, "held-out")
    assert [x.split()[1] for x in lines] == expected
    if expected:
        assert lines[0].startswith(f"warning: like rests on {events['like']:.0f} effective "
                                   "events on the held-out split")
