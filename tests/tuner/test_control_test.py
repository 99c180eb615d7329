"""The export's control test against the truth of marketplace logs, and its record.

On logs of three world seeds, whose exact objective the world gives, the one-sided ``cdr``
test refuses the control weights themselves and a vector truly worse than them, and passes
one clearly better (the best of a grid, in truth). The CLI's tests check the record it
leaves: ``extra.control_test`` in the file, in ``--json`` and in the study's attr, the
former two-sided rule on request, ``--validated`` choosing on the search split, and old
files (without a recorded test) read and judged as before.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jsonschema
import numpy as np
import optuna
import pytest

from simulator.estimators import SNIPS, SlateFeedback
from simulator.intervals import NormalInterval
from simulator.replay import OBJECTIVE, Replay
from simulator.report import ab_report
from tests import worldkit
from tests.simulator.toylog import make_toy
from tests.tuner.test_cli import assert_user_error, invoke
from tests.tuner.test_export_cli import SCHEMA
from tests.tuner.test_export_cli import studies as export_studies
from tuner.evaluation.scores import ScoreTable
from tuner.picks.control_test import (
    ControlTest,
    cdr,
    choose_on_search,
    gated_dr,
    one_sided_test,
)
from tuner.picks.export import ExportedWeights
from tuner.picks.picking import beats_control
from tuner.study import ATTR_EXPORTED

REQUESTS = 32_000  # the paired lift's standard error ~0.037 against true lifts of 0.15-0.2


def _replay(log: worldkit.WorldLog, estimator: object) -> Replay:
    fb = SlateFeedback.from_traffic(log.traffic, worldkit.TASKS, reward_model=log.scores)
    return Replay(fb, log.scores, worldkit.TASKS, worldkit.FUSION, log.policy,
                  estimator, NormalInterval())  # type: ignore[arg-type]


@pytest.fixture(scope="module", params=[0, 1, 2])
def world(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """A log of one world seed, its cdr replay, control, and a grid's true lifts."""
    log = worldkit.make_log(request.param, REQUESTS)
    control = np.asarray(log.world.config.logging_weights, dtype=float)
    axis = np.linspace(0.0, 4.0, 9)
    grid = worldkit.SPACE.matrix_to_weights(
        np.stack(np.meshgrid(axis, axis), axis=-1).reshape(-1, 2))
    lifts = log.true_objective(grid) - log.true_objective(control[None])[0]
    return log, _replay(log, cdr()), control, grid, lifts


def test_refuses_the_control_vector_itself(world) -> None:  # type: ignore[no-untyped-def]
    _, replay, control, _, _ = world
    test = one_sided_test(replay, control, control, worldkit.OBJECTIVE_WEIGHTS)
    assert test.lift == 0.0 and test.lower_bound == 0.0
    assert not test.passed and test.verdict == "control"


def test_refuses_a_truly_worse_vector(world) -> None:  # type: ignore[no-untyped-def]
    _, replay, control, grid, lifts = world
    # the grid vector whose true loss is nearest a tenth (about 4% of the value): worse,
    # but not absurdly so
    i = int(np.argmin(np.where(lifts < 0, np.abs(lifts + 0.1), np.inf)))
    assert lifts[i] < -0.03
    test = one_sided_test(replay, grid[i], control, worldkit.OBJECTIVE_WEIGHTS)
    assert not test.passed, test


def test_passes_a_clearly_better_vector(world) -> None:  # type: ignore[no-untyped-def]
    _, replay, control, grid, lifts = world
    i = int(np.argmax(lifts))
    assert lifts[i] > 0.15  # ~7% of the value: the grid's best, in truth
    test = one_sided_test(replay, grid[i], control, worldkit.OBJECTIVE_WEIGHTS)
    assert test.passed, test
    assert test.estimator == "cdr" and test.n_requests == REQUESTS


def test_the_bound_is_one_sided(world) -> None:  # type: ignore[no-untyped-def]
    """The one-sided 95% bound is the low end of the two-sided 90% interval: above the
    two-sided 95% interval's, below the lift."""
    _, replay, control, grid, lifts = world
    pick = grid[int(np.argmax(lifts))]
    test = one_sided_test(replay, pick, control, worldkit.OBJECTIVE_WEIGHTS)
    at = {level: ab_report(dataclasses.replace(replay, interval=NormalInterval(level=level)),
                           control, pick, worldkit.OBJECTIVE_WEIGHTS).row(OBJECTIVE).lift
          for level in (0.90, 0.95)}
    assert test.lower_bound == pytest.approx(at[0.90].low, rel=1e-9)
    assert test.lift == pytest.approx(at[0.95].value, rel=1e-9)
    assert at[0.95].low < test.lower_bound < test.lift


def test_choose_on_search_takes_the_best_by_gated_dr(world) -> None:  # type: ignore[no-untyped-def]
    log, _, control, grid, lifts = world
    order = np.argsort(lifts)
    candidates = grid[[order[0], order[len(order) // 2], order[-1]]]  # worst, median, best
    choice = choose_on_search(_replay(log, gated_dr()), candidates, control,
                              worldkit.OBJECTIVE_WEIGHTS)
    assert choice.candidate == int(np.argmax(choice.values))
    assert choice.candidate == 2  # the truly best of three far apart
    np.testing.assert_array_equal(choice.weights, candidates[2])


def test_refuses_an_unknown_rule_and_a_bad_level() -> None:
    with pytest.raises(ValueError, match=r"control test 'three-sided' is unknown; valid"):
        ControlTest("three-sided", "cdr", 0.0, 0.0, 0.95, 1, "holdout")
    log = worldkit.make_log(0, 200)
    w = np.ones(3)
    with pytest.raises(ValueError, match=r"level must be in \(0.5, 1\)"):
        one_sided_test(_replay(log, SNIPS()), w, w, worldkit.OBJECTIVE_WEIGHTS, level=0.4)


def test_record_round_trips() -> None:
    test = ControlTest("one-sided", "cdr", 0.2, float("nan"), 0.95, 10, "holdout")
    d = test.to_dict()
    assert d["lower_bound"] is None and d["verdict"] == "control"
    json.dumps(d, allow_nan=False)
    back = ControlTest.from_dict({**d, "forced": True})
    assert back.rule == test.rule and np.isnan(back.lower_bound) and not back.passed
    with pytest.raises(ValueError, match=r"control test record lacks \['lift'\]"):
        ControlTest.from_dict({k: v for k, v in d.items() if k != "lift"})


studies = export_studies  # the toy studies 'weak' (beats control) and 'fair' (does not)


def _export(db: Path, study: str, *args: str) -> dict:  # type: ignore[type-arg]
    result = invoke(["search", "export", "--storage", str(db), "--study", study, "--json",
                     *args])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    jsonschema.validate(data, SCHEMA)
    return data  # type: ignore[no-any-return]


def test_the_export_records_its_test(studies: Path) -> None:
    weak = _export(studies, "weak")
    test = weak["extra"]["control_test"]
    assert test["rule"] == "one-sided" and test["estimator"] == "cdr"
    assert test["verdict"] == "pick" and weak["pick"] == "strategy"
    assert test["lower_bound"] > 0 and test["lift"] > test["lower_bound"]
    assert test["n_requests"] == weak["extra"]["holdout_requests"]
    assert test["split"] == "holdout"
    study = optuna.load_study(study_name="weak", storage=f"sqlite:///{studies}")
    assert study.user_attrs[ATTR_EXPORTED]["control_test"] == test

    fair = _export(studies, "fair")
    assert fair["pick"] == "control"
    assert fair["extra"]["control_test"]["verdict"] == "control"
    assert fair["extra"]["control_test"]["lower_bound"] <= 0
    forced = _export(studies, "fair", "--force-pick")
    assert forced["pick"] == "strategy"
    assert forced["extra"]["control_test"]["forced"] is True


def test_the_text_output_names_the_test(studies: Path, tmp_path: Path) -> None:
    result = invoke(["search", "export", "--storage", str(studies), "--study", "weak",
                     "--out", str(tmp_path / "w.json")])
    assert result.exit_code == 0, result.output
    assert "control test (one-sided): cdr paired objective lift" in result.stdout
    assert result.stdout.rstrip().splitlines()[-2].endswith(": pick")


def test_the_former_two_sided_rule_on_request(studies: Path) -> None:
    data = _export(studies, "weak", "--control-test", "two-sided")
    test = data["extra"]["control_test"]
    assert test["rule"] == "two-sided" and test["estimator"] == "snips"
    assert test["lower_bound"] == data["extra"]["lift_vs_control"]["low"]
    assert (test["verdict"] == "pick") == (data["pick"] == "strategy")


def test_validated_chooses_on_the_search_split(studies: Path) -> None:
    data = _export(studies, "weak", "--validated", "--force-pick")
    selection, test = data["extra"]["selection"], data["extra"]["control_test"]
    assert selection["rounds"] == [1] and len(selection["search_split_gated_dr"]) == 1
    assert "gated_dr" in selection["rule"]
    # tested and reported on the whole held-out split (no half spent on the choice)
    assert test["n_requests"] == data["extra"]["holdout_requests"]
    assert test["split"] == "holdout" and test["estimator"] == "cdr"
    assert selection["search_requests"] + test["n_requests"] == 2000


def test_an_unknown_rule_is_a_usage_error(studies: Path) -> None:
    result = invoke(["search", "export", "--storage", str(studies), "--study", "weak",
                     "--json", "--control-test", "three-sided"])
    assert result.exit_code == 2 and "one-sided" in result.output


def test_a_score_table_without_every_label_task_is_refused(tmp_path: Path) -> None:
    """cdr and gated_dr need a score per label task: the export says so and names the
    two-sided test, which needs none, and writes nothing."""
    traffic, _, scores = make_toy(0, n_requests=600)
    logs = traffic.write(tmp_path / "logs.parquet")
    table = ScoreTable(traffic.request_ids, traffic.item_ids,  # no score named like
                       {"click": scores[..., 0], "relevance": scores[..., 1]})
    db = tmp_path / "s.db"
    run = invoke(["search", "run", "--storage", str(db), "--study", "s", "--logs", str(logs),
                  "--scores", str(table.write(tmp_path / "scores.parquet")),
                  "--objective", "click=1,like=1", "--rounds", "1", "--population", "4",
                  "--no-progress"])
    assert run.exit_code == 0, run.output
    out = tmp_path / "w.json"
    for flags in ([], ["--validated"]):
        result = invoke(["search", "export", "--storage", str(db), "--study", "s",
                         "--out", str(out), *flags])
        assert_user_error(result, "needs a score for every label task", "['like']",
                          "--control-test two-sided")
        assert not out.exists()
    two = invoke(["search", "export", "--storage", str(db), "--study", "s", "--out",
                  str(out), "--control-test", "two-sided"])
    assert two.exit_code == 0, two.output
    assert ExportedWeights.read(out).extra["control_test"]["rule"] == "two-sided"


def test_old_exports_still_read_and_judge(tmp_path: Path) -> None:
    """A file written before the test was recorded reads, and is judged by its held-out
    lift interval, as it was."""
    old = {"schema_version": "1.0", "formula": "multiplicative", "fusion": {},
           "tasks": ["click", "like"], "weights": {"click": 1.0, "like": 0.5},
           "objective": {"value": 1.0, "low": 0.9, "high": 1.1, "split": "holdout"},
           "pick": "cem_mean", "study_name": "s", "trial_number": None,
           "data_fingerprint": "d", "model_fingerprint": "m",
           "created_at": "2026-01-01T00:00:00+00:00",
           "extra": {"lift_vs_control": {"value": 0.1, "low": 0.02, "high": 0.2}}}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    exported = ExportedWeights.read(path)
    assert exported.pick == "strategy" and "control_test" not in exported.extra
    assert beats_control(exported)
    low = dataclasses.replace(exported, extra={"lift_vs_control": {"low": -0.01}})
    assert not beats_control(low)
