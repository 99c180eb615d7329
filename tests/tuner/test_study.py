from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from tuner.space import FusionSpace
from tuner.storage import HEAD, ProjectStore, SchemaVersionError
from tuner.strategies import CEMConfig
from tuner.study import (
    SearchSpec,
    TrialResult,
    create_or_load_study,
    history,
    load_search,
    replayed_strategy,
    run_rounds,
    trials_table,
)

SPACE = FusionSpace(("click", "like", "follow"), pinned="click")
CONFIG = CEMConfig(population=8)
SEARCH = SearchSpec.new(SPACE, CONFIG, 5)
TARGET = np.array([1.0, 2.5, 0.7])

optuna.logging.set_verbosity(optuna.logging.WARNING)


def evaluate(W: np.ndarray) -> list[TrialResult]:
    """Row-wise toy objective; W [M, 3]."""
    v = -((W - TARGET) ** 2).sum(axis=1)
    return [
        TrialResult(x, x - 0.1, x + 0.1, 50.0, dict(zip(SPACE.tasks, w, strict=True)))
        for x, w in zip(v.tolist(), W.tolist(), strict=True)
    ]


def _url(tmp_path: Path, name: str) -> str:
    return f"sqlite:///{tmp_path / name}"


def _done(study: optuna.Study) -> list[tuple[dict, float | None, int, int]]:
    return [
        (t.params, t.value, t.user_attrs["round"], t.user_attrs["member"])
        for t in study.get_trials(states=(TrialState.COMPLETE,))
    ]


def _reference(tmp_path: Path, rounds: int = 4) -> optuna.Study:
    study = create_or_load_study(_url(tmp_path, "ref.db"), "s", SPACE, CONFIG, seed=5)
    run_rounds(study, SEARCH, evaluate, rounds=rounds, progress=False)
    return study


def test_the_objective_is_named_for_the_dashboard(tmp_path: Path) -> None:
    url = _url(tmp_path, "n.db")
    create_or_load_study(url, "s", SPACE, CONFIG, seed=5)
    # read back from the database, as optuna-dashboard does: "objective", not "Objective 0"
    assert optuna.load_study(study_name="s", storage=url).metric_names == ["objective"]
    assert create_or_load_study(url, "s").metric_names == ["objective"]


def test_rounds_in_one_go_equal_resumed_rounds(tmp_path: Path) -> None:
    ref = _reference(tmp_path)
    url = _url(tmp_path, "split.db")
    study = create_or_load_study(url, "s", SPACE, CONFIG, seed=5, settings={"data": "x.parquet"})
    first = run_rounds(study, SEARCH, evaluate, rounds=1, progress=False)
    del study
    study, search = load_search(url, "s")
    assert (search.strategy, search.space, search.config, search.seed, search.settings) == (
        "cem", SPACE, CONFIG, 5, {"data": "x.parquet"})
    rest = run_rounds(study, search, evaluate, rounds=3, progress=False)
    assert _done(study) == _done(ref)
    assert [s.round for s in first + rest] == [0, 1, 2, 3]
    assert history(study, SEARCH) == history(ref, SEARCH) == first + rest
    assert replayed_strategy(study, SEARCH)[1] == 4
    stored = ProjectStore(url).rounds("s")
    assert [(r.round, r.best_trial, r.mean) for r in stored] == [
        (s.round, s.best_trial, s.mean) for s in first + rest
    ]
    # the search improved on the toy objective
    assert rest[-1].best_value > first[0].best_value


def test_interrupted_runs_resume_to_the_same_trials(tmp_path: Path) -> None:
    ref = _reference(tmp_path)
    url = _url(tmp_path, "crash.db")
    study = create_or_load_study(url, "s", SPACE, CONFIG, seed=5)
    calls = []

    def flaky(W: np.ndarray) -> list[TrialResult]:
        calls.append(len(W))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return evaluate(W)

    with pytest.raises(KeyboardInterrupt):
        run_rounds(study, SEARCH, flaky, rounds=4, progress=False)
    # crash inside a generation: 3 of 8 members of round 1 written, then interrupted
    real_add = study.add_trial
    added = []

    def add_then_crash(trial: optuna.trial.FrozenTrial) -> None:
        if len(added) == 3:
            raise KeyboardInterrupt
        added.append(trial)
        real_add(trial)

    study.add_trial = add_then_crash  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        run_rounds(study, SEARCH, evaluate, rounds=4, progress=False)
    # and a worker that asked two trials and died
    study.ask(SPACE.distributions())
    study.ask(SPACE.distributions())

    study, _ = load_search(url, "s")
    seen = []

    def counting(W: np.ndarray) -> list[TrialResult]:
        seen.append(len(W))
        return evaluate(W)

    done = run_rounds(study, SEARCH, counting, rounds=3, progress=False)
    assert seen == [5, 8, 8]  # only the missing members of round 1 are evaluated
    assert [s.round for s in done] == [1, 2, 3]
    assert _done(study) == _done(ref)
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert len(failed) == 2
    assert all("interrupted" in t.user_attrs["fail_reason"] for t in failed)


def test_non_finite_value_is_a_failed_trial(tmp_path: Path) -> None:
    def bad_first(W: np.ndarray) -> list[TrialResult]:
        out = evaluate(W)
        out[0] = TrialResult(float("nan"), 0.0, 0.0, 0.0)
        out[1] = TrialResult(float("inf"), 0.0, 0.0, 0.0)
        return out

    url = _url(tmp_path, "nan.db")
    study = create_or_load_study(url, "s", SPACE, CONFIG, seed=1)
    summaries = run_rounds(study, SearchSpec.new(SPACE, CONFIG, 1), bad_first, rounds=2,
                           progress=False)
    assert [s.n_trials for s in summaries] == [6, 6]
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert [t.user_attrs["member"] for t in failed] == [0, 1, 0, 1]
    assert all(t.user_attrs["fail_reason"].startswith("non-finite") for t in failed)
    # resuming does not re-evaluate failed members
    run_rounds(study, SearchSpec.new(SPACE, CONFIG, 1), bad_first, rounds=0, progress=False)
    assert len(study.trials) == 16
    rows = trials_table(study)
    json.dumps(rows, allow_nan=False)
    assert rows[0]["state"] == "FAIL" and rows[0]["value"] is None
    assert rows[2]["metrics"]["click"] == 1.0


def test_settings_conflicts_and_missing_study(tmp_path: Path) -> None:
    url = _url(tmp_path, "c.db")
    create_or_load_study(url, "s", SPACE, CONFIG, seed=1)
    with pytest.raises(ValueError, match="created with seed 1, not 2"):
        create_or_load_study(url, "s", SPACE, CONFIG, seed=2)
    with pytest.raises(ValueError, match="created with config"):
        create_or_load_study(url, "s", SPACE, CEMConfig(population=9), seed=1)
    other = FusionSpace(SPACE.tasks, pinned="like")
    with pytest.raises(ValueError, match="created with space"):
        create_or_load_study(url, "s", other, CONFIG, seed=1)
    with pytest.raises(ValueError, match=r"no study named 'x'.*existing studies: \['s'\]"):
        load_search(url, "x")
    study = create_or_load_study(url, "s")  # everything from the database
    with pytest.raises(ValueError, match="created with seed"):
        run_rounds(study, SearchSpec.new(SPACE, CONFIG, 3), evaluate, rounds=1, progress=False)


def test_init_mean_is_stored_and_used(tmp_path: Path) -> None:
    url = _url(tmp_path, "m.db")
    study = create_or_load_study(url, "s", SPACE, CONFIG, seed=1)
    control = np.array([2.0, 1.0, 4.0])  # full weights, rescaled so click = 1
    (first,) = run_rounds(study, SearchSpec.new(SPACE, CONFIG, 1, control), evaluate, rounds=1,
                          progress=False)
    assert first.mean == {"like": 0.5, "follow": 2.0}
    study, search = load_search(url, "s")
    assert search.init_mean == (0.5, 2.0)
    (second,) = run_rounds(study, search, evaluate, rounds=1, progress=False)
    assert history(study, search)[1] == second
    with pytest.raises(ValueError, match="init_mean can only change"):
        run_rounds(study, SearchSpec.new(SPACE, CONFIG, 1, np.ones(2)), evaluate, rounds=1,
                   progress=False)


def test_schema_refuses_a_newer_database(tmp_path: Path) -> None:
    path = tmp_path / "v.db"
    store = ProjectStore(f"sqlite:///{path}")
    assert store.ensure_schema() == HEAD
    store.close()
    with sqlite3.connect(path) as con:
        con.execute("UPDATE fusiontune_alembic_version SET version_num = '0099'")
    msg = (
        r"database schema revision 0099 is newer than this fusiontune knows "
        rf"\(head {HEAD}\); upgrade fusiontune"
    )
    with pytest.raises(SchemaVersionError, match=msg):
        ProjectStore(f"sqlite:///{path}").ensure_schema()
    with pytest.raises(SchemaVersionError, match=msg):
        create_or_load_study(f"sqlite:///{path}", "s", SPACE, CONFIG, seed=1)
