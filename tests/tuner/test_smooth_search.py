"""SmoothCEM's noise-aware spread and the split-sample validated pick.

The strategy contract (ask/tell, replay, resume, workers) runs over SmoothCEM with every
registered strategy in ``test_strategies.py`` and ``test_strategy_contract.py``; here are
what only it promises: a spread that does not shrink while its elites cannot be told
apart, and one that does when they can. The validated pick is checked on a marketplace
log: folds are disjoint halves, control is the export when nothing beats it, and the
reported lift is the plain paired lift on the report fold.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from simulator.estimators import SNIPS
from simulator.replay import OBJECTIVE
from simulator.report import ab_report
from tests.simulator.toylog import TASKS, make_toy
from tests.tuner.test_cli import invoke
from tests.tuner.test_export_cli import SCHEMA
from tests.tuner.test_export_cli import studies as export_studies
from tests.worldkit import OBJECTIVE_WEIGHTS, SPACE, make_log
from tuner.evaluation.scores import ScoreTable
from tuner.picks.export import ExportedWeights
from tuner.picks.validated import fold_replays, validated_pick
from tuner.strategies import CEM, CEMConfig, SmoothCEM, SmoothCEMConfig


def test_spread_keeps_its_width_on_pure_noise() -> None:
    """Values that are noise alone: CEM shrinks onto them, SmoothCEM barely moves."""
    smooth = SmoothCEM(SPACE, SmoothCEMConfig(population=16), seed=0)
    cem = CEM(SPACE, CEMConfig(population=16), seed=0)
    start = smooth.spread()
    for strategy in (smooth, cem):
        rng = np.random.default_rng(1)
        for g in range(8):
            X = strategy.ask(g)
            strategy.tell(g, X, rng.standard_normal(len(X)))
    assert (smooth.spread() >= 0.45 * start).all()
    assert smooth.spread().mean() > 1.5 * cem.spread().mean()
    assert not smooth.distinguishable


def test_spread_shrinks_when_the_slope_is_clear() -> None:
    cem = SmoothCEM(SPACE, SmoothCEMConfig(population=16), seed=0)
    start = cem.spread()
    for g in range(6):
        X = cem.ask(g)
        cem.tell(g, X, -((X - 1.0) ** 2).sum(axis=1))  # exact, no noise
    assert cem.distinguishable or (cem.spread() < start).all()
    assert np.abs(cem.pick() - 1.0).max() < 0.5


@pytest.mark.parametrize(("field", "value", "pattern"), [
    ("bandwidth", 0.0, "bandwidth"), ("z", -1.0, "z is"), ("ridge", float("nan"), "ridge"),
    ("elite_fraction", 0.0, "elite_fraction"), ("init_sigma", 0.01, "init_sigma"),
])
def test_config_refuses(field: str, value: float, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        SmoothCEMConfig(**{field: value})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def holdout():  # type: ignore[no-untyped-def]
    log = make_log(3, 2000)
    return log, log.replay(SNIPS())


def test_folds_are_the_two_halves(holdout) -> None:  # type: ignore[no-untyped-def]
    _, replay = holdout
    a, b = fold_replays(replay)
    assert a.feedback.n_requests + b.feedback.n_requests == replay.feedback.n_requests
    np.testing.assert_array_equal(b.scores, replay.scores[a.feedback.n_requests:])


def test_control_is_not_beaten_by_itself(holdout) -> None:  # type: ignore[no-untyped-def]
    _, replay = holdout
    control = np.array([1.0, 1.0, 1.0])
    pick = validated_pick(replay, control[None], control, OBJECTIVE_WEIGHTS)
    assert not pick.beats_control
    assert pick.report.row(OBJECTIVE).lift.value == 0.0


def test_reported_lift_is_the_report_folds_paired_lift(holdout) -> None:  # type: ignore[no-untyped-def]
    log, replay = holdout
    control = np.array([1.0, 1.0, 1.0])
    cands = SPACE.matrix_to_weights(np.array([[0.2, 0.2], [2.0, 1.0], [3.0, 3.0]]))
    pick = validated_pick(replay, cands, control, OBJECTIVE_WEIGHTS)
    assert pick.candidate == int(np.argmax(pick.choose_lifts))
    h = pick.n_choose
    part = log.part(log.traffic.take(np.arange(h, log.traffic.n_requests)))
    row = ab_report(part.replay(SNIPS()), control, cands[pick.candidate],
                    OBJECTIVE_WEIGHTS).row(OBJECTIVE)
    got = pick.report.row(OBJECTIVE).lift
    assert got.value == pytest.approx(row.lift.value, rel=1e-9, abs=1e-12)
    assert got.low == pytest.approx(row.lift.low, rel=1e-9, abs=1e-12)
    assert pick.beats_control == (row.lift.low > 0)


studies = export_studies  # the two toy studies of test_export_cli (module-scoped fixture)


def test_validated_export_reports_its_report_fold(studies: Path, tmp_path: Path) -> None:
    out = tmp_path / "v.json"
    result = invoke(["search", "export", "--storage", str(studies), "--study", "weak",
                     "--validated", "--control-test", "two-sided", "--out", str(out),
                     "--force-pick"])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    jsonschema.validate(data, SCHEMA)
    selection = data["extra"]["selection"]
    assert data["pick"] == "strategy" and selection["rounds"] == [1]
    assert data["extra"]["holdout_requests"] == selection["report_requests"]
    # the held-out split is a hash split (about, not exactly, 1000 of the 2000 requests)
    # cut into two halves of it
    assert 900 <= selection["choose_requests"] + selection["report_requests"] <= 1100
    assert abs(selection["choose_requests"] - selection["report_requests"]) <= 1


def test_validated_export_refuses_a_pick_that_does_not_beat_control(
        studies: Path, tmp_path: Path) -> None:
    out = tmp_path / "v.json"
    result = invoke(["search", "export", "--storage", str(studies), "--study", "fair",
                     "--validated", "--control-test", "two-sided", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "report half of the held-out requests" in result.stderr
    exported = ExportedWeights.read(out)
    assert exported.pick == "control" and "selection" in exported.extra


def test_validated_takes_no_trial(studies: Path) -> None:
    result = invoke(["search", "export", "--storage", str(studies), "--study", "weak",
                     "--validated", "--best", "--json"])
    assert result.exit_code != 0 and "--validated" in result.output


@pytest.mark.slow
def test_search_run_with_smooth_cem_resumes_and_exports(tmp_path: Path) -> None:
    traffic, _, scores = make_toy(1, n_requests=1200)
    logs = traffic.write(tmp_path / "logs.parquet")
    table = ScoreTable(traffic.request_ids, traffic.item_ids,
                       {t: scores[..., i] for i, t in enumerate(TASKS)})
    score_path = table.write(tmp_path / "scores.parquet")
    db = tmp_path / "s.db"
    base = ["search", "run", "--storage", str(db), "--study", "s", "--logs", str(logs),
            "--scores", str(score_path), "--objective", "click=1,like=1", "--population", "4",
            "--strategy", "smooth-cem", "--no-progress"]
    for rounds in ("1", "2"):  # the second call resumes from the database
        result = invoke([*base, "--rounds", rounds])
        assert result.exit_code == 0, result.output
    out = tmp_path / "w.json"
    result = invoke(["search", "export", "--storage", str(db), "--study", "s", "--validated",
                     "--force-pick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["extra"]["selection"]["rounds"] == [1, 2]  # --rounds is the total
