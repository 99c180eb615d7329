"""The bulk trial writer stores what ``study.add_trial`` stores, as Optuna reads it back.

Runs on SQLite and on a fresh PostgreSQL database (``$FUSIONTUNE_TEST_PG``, default
``postgresql://postgres@127.0.0.1:5432/postgres``; skipped when unreachable, except under
``CI=true``).
"""

from __future__ import annotations

import math
import threading
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import optuna
import pytest
import sqlalchemy as sa
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.storages import RDBStorage
from optuna.storages._rdb import models
from optuna.trial import FrozenTrial, TrialState, create_trial

import tuner.storage._trial_writer as writer_mod
import tuner.study._loop as loop_mod
from tests.tuner import toy_objective as toy
from tuner.storage import ClaimBoard
from tuner.storage._trial_writer import (
    OPTUNA_ALEMBIC_HEAD,
    OptunaSchemaError,
    OptunaSchemaWarning,
    add_trials,
    bulk_supported,
    check_schema,
    write_trials,
)
from tuner.study import create_or_load_study, run_rounds

optuna.logging.set_verbosity(optuna.logging.WARNING)




@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'w.db'}"
    return str(request.getfixturevalue("pg_url"))


DISTS = {
    "x": FloatDistribution(-2.0, 3.0),
    "lr": FloatDistribution(1e-5, 1e-1, log=True),
    "q": FloatDistribution(0.0, 1.0, step=0.25),
    "n": IntDistribution(1, 64, log=True),
    "k": IntDistribution(0, 10, step=2),
    "kind": CategoricalDistribution(["a", 3, None, 2.5, True]),
}


def _batch(n: int, seed: int) -> list[FrozenTrial]:
    """COMPLETE (finite and infinite values), FAIL and PRUNED trials with every attr kind."""
    rng = np.random.default_rng(seed)
    start = datetime(2026, 3, 29, 1, 30, 0, 123456)  # near a DST change in many zones
    out = []
    for i in range(n):
        params = {
            "x": float(rng.uniform(-2, 3)),
            "lr": float(10 ** rng.uniform(-5, -1)),
            "q": float(rng.integers(0, 5) * 0.25),
            "n": int(rng.integers(1, 65)),
            "k": int(rng.integers(0, 6) * 2),
            "kind": [ "a", 3, None, 2.5, True][i % 5],
        }
        state = [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAIL,
                 TrialState.PRUNED][i % 4]
        value = [float(rng.normal()), math.inf if i % 8 == 1 else -1e300][i % 2]
        trial = create_trial(
            state=state,
            value=value if state == TrialState.COMPLETE else None,
            params=params,
            distributions=DISTS,
            user_attrs={"round": i // 4, "member": i, "ci_low": value - 0.1,
                        "nested": {"a": [1, 2.5, None, "é"], "b": True}, "none": None,
                        "metric:click": float(rng.uniform())},
            system_attrs={"fixed_params": {"x": 1.0}} if i % 3 == 0 else {},
            intermediate_values={0: 0.5, 3: -math.inf} if state == TrialState.PRUNED else {},
        )
        trial.datetime_start = start + timedelta(seconds=7 * i)
        trial.datetime_complete = start + timedelta(seconds=7 * i + 3)
        out.append(trial)
    return out


def _fields(t: FrozenTrial) -> tuple:
    return (t.number, t.state, t.values, t.params, t.distributions, t.user_attrs,
            t.system_attrs, t.intermediate_values, t.datetime_start, t.datetime_complete)


def test_bulk_written_trials_equal_add_trial_ones(url: str) -> None:
    a = optuna.create_study(storage=url, study_name="by_add_trial", direction="maximize")
    b = optuna.create_study(storage=url, study_name="by_writer", direction="maximize")
    for s in (a, b):  # one trial from Optuna itself first: numbering continues from it
        s.optimize(lambda t: t.suggest_float("x", -2, 3), n_trials=1)
    first, second = _batch(9, seed=1), _batch(7, seed=2)
    for t in first + second:
        a.add_trial(t)
    rdb = RDBStorage(url)
    sid = rdb.get_study_id_from_name("by_writer")
    w1 = add_trials(rdb, sid, first)
    w2 = add_trials(rdb, sid, second)
    assert w1.numbers == tuple(range(1, 10)) and w2.numbers == tuple(range(10, 17))
    b.add_trial(_batch(1, seed=3)[0])  # Optuna numbers after a bulk write as after its own
    a.add_trial(_batch(1, seed=3)[0])
    # read back through fresh storages (no cache), as optuna-dashboard would
    fa = optuna.load_study(study_name="by_add_trial", storage=url).trials
    fb = optuna.load_study(study_name="by_writer", storage=url).trials
    assert [t.number for t in fb] == list(range(18))
    assert len(fa) == len(fb) == 18
    for ta, tb in zip(fa[1:], fb[1:], strict=True):
        assert _fields(ta) == _fields(tb)
    assert optuna.load_study(study_name="by_writer", storage=url).best_trial.number == (
        optuna.load_study(study_name="by_add_trial", storage=url).best_trial.number
    )
    # also the cached storage of a study object that existed before the writes sees them
    assert [_fields(t) for t in b.trials[1:]] == [_fields(t) for t in fa[1:]]
    rdb.engine.dispose()


def test_numbers_stay_unique_under_concurrent_writers(url: str) -> None:
    optuna.create_study(storage=url, study_name="race", direction="maximize")
    rdb = RDBStorage(url)
    sid = rdb.get_study_id_from_name("race")
    errors: list[BaseException] = []

    def bulk(seed: int) -> None:
        try:
            for k in range(5):
                add_trials(rdb, sid, _batch(6, seed=100 * seed + k))
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    def single() -> None:
        try:
            study = optuna.load_study(study_name="race", storage=url)
            for t in _batch(10, seed=999):
                study.add_trial(t)
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=bulk, args=(s,)) for s in range(4)]
    threads.append(threading.Thread(target=single))
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    trials = optuna.load_study(study_name="race", storage=url).trials
    assert len(trials) == 4 * 5 * 6 + 10
    # Optuna's rule: a trial's number counts the study's trials with a smaller id
    by_id = sorted(trials, key=lambda t: t._trial_id)
    assert [t.number for t in by_id] == list(range(len(trials)))
    rdb.engine.dispose()


def test_a_failed_batch_writes_nothing(url: str) -> None:
    optuna.create_study(storage=url, study_name="s", direction="maximize")
    rdb = RDBStorage(url)
    sid = rdb.get_study_id_from_name("s")
    add_trials(rdb, sid, _batch(3, seed=1))
    other = create_trial(value=1.0, params={"x": 1}, distributions={"x": IntDistribution(0, 4)})
    with pytest.raises(ValueError, match="[Cc]annot set different distribution kind"):
        add_trials(rdb, sid, _batch(2, seed=2) + [other])
    with pytest.raises(ValueError, match="values"):
        add_trials(rdb, sid, [create_trial(values=[1.0, 2.0])])
    with pytest.raises(ValueError, match="finished"):
        add_trials(rdb, sid, [create_trial(state=TrialState.RUNNING)])
    with pytest.raises(KeyError):
        add_trials(rdb, sid + 1000, _batch(1, seed=3))
    with rdb.engine.connect() as conn:  # rolled back by the caller: nothing stays
        write_trials(conn, sid, _batch(4, seed=4))
        conn.rollback()
    assert len(optuna.load_study(study_name="s", storage=url).trials) == 3
    rdb.engine.dispose()


def test_schema_is_pinned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check_schema()
    rdb = RDBStorage(f"sqlite:///{tmp_path / 'v.db'}")
    assert rdb.get_current_version() == rdb.get_head_version() == OPTUNA_ALEMBIC_HEAD
    monkeypatch.setattr(models, "SCHEMA_VERSION", models.SCHEMA_VERSION + 1)
    assert not bulk_supported()
    with pytest.raises(OptunaSchemaError, match="SCHEMA_VERSION is 13, not 12"):
        check_schema()
    with rdb.engine.connect() as conn, pytest.raises(OptunaSchemaError):
        write_trials(conn, 1, _batch(1, seed=0))  # in the caller's transaction: no fallback
    monkeypatch.undo()
    col = sa.Column("extra", sa.Integer)
    models.TrialModel.__table__.append_column(col)
    try:
        with pytest.raises(OptunaSchemaError, match="table 'trials' has columns"):
            check_schema()
    finally:
        models.TrialModel.__table__._columns.remove(col)
    check_schema()


def test_run_rounds_writes_a_round_in_one_batch(url: str, monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    calls: list[int] = []
    real = loop_mod.add_trials

    def counting(rdb: RDBStorage, sid: int, trials: list[FrozenTrial],  # type: ignore[no-untyped-def]
                 numbers: list[int] | None = None):
        calls.append(len(trials))
        return real(rdb, sid, trials, numbers)

    monkeypatch.setattr(loop_mod, "add_trials", counting)
    name = f"bulk_{uuid.uuid4().hex[:6]}"
    study = create_or_load_study(url, name, toy.SPACE, toy.CONFIG, seed=toy.SEED)
    run_rounds(study, toy.SEARCH, toy.evaluate, rounds=3, progress=False)
    assert calls == [toy.CONFIG.population] * 3
    # the same search written one add_trial at a time (the path for a replaced add_trial)
    ref_url = f"sqlite:///{tmp_path / 'ref.db'}"
    ref = create_or_load_study(ref_url, "ref", toy.SPACE, toy.CONFIG, seed=toy.SEED)
    ref.add_trial = ref.add_trial  # type: ignore[method-assign]
    run_rounds(ref, toy.SEARCH, toy.evaluate, rounds=3, progress=False)
    assert calls == [toy.CONFIG.population] * 3  # the reference did not use the writer

    def strip(t: FrozenTrial) -> tuple:
        return _fields(t)[:8]

    assert [strip(t) for t in study.trials] == [strip(t) for t in ref.trials]


def test_run_rounds_resumes_after_a_crash_inside_the_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    study = create_or_load_study(url, "s", toy.SPACE, toy.CONFIG, seed=toy.SEED)
    run_rounds(study, toy.SEARCH, toy.evaluate, rounds=1, progress=False)

    def write_then_die(rdb: RDBStorage, sid: int, trials: list[FrozenTrial],
                       numbers: list[int] | None = None) -> None:
        with rdb.engine.connect() as conn:
            write_trials(conn, sid, trials)
            raise KeyboardInterrupt  # before commit

    monkeypatch.setattr(loop_mod, "add_trials", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_rounds(study, toy.SEARCH, toy.evaluate, rounds=1, progress=False)
    monkeypatch.undo()
    assert len(study.trials) == toy.CONFIG.population
    run_rounds(study, toy.SEARCH, toy.evaluate, rounds=2, progress=False)
    ref = create_or_load_study(f"sqlite:///{tmp_path / 'ref.db'}", "s", toy.SPACE, toy.CONFIG,
                               seed=toy.SEED)
    run_rounds(ref, toy.SEARCH, toy.evaluate, rounds=3, progress=False)
    assert [_fields(t)[:8] for t in study.trials] == [_fields(t)[:8] for t in ref.trials]


def _force_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """An Optuna whose schema the bulk writer does not know, not yet warned about."""
    monkeypatch.setattr(models, "SCHEMA_VERSION", models.SCHEMA_VERSION + 1)
    monkeypatch.setattr(writer_mod, "_warned", False)


def test_another_schema_falls_back_to_optunas_api_with_one_warning(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    suffix = uuid.uuid4().hex[:6]
    bulk = optuna.create_study(storage=url, study_name=f"bulk_{suffix}", direction="maximize")
    slow = optuna.create_study(storage=url, study_name=f"slow_{suffix}", direction="maximize")
    rdb = RDBStorage(url)
    batches = [_batch(9, seed=1), _batch(7, seed=2)]
    for b in batches:
        add_trials(rdb, bulk._study_id, b)
    _force_fallback(monkeypatch)
    with pytest.warns(OptunaSchemaWarning, match="one at a time") as caught:
        written = [add_trials(rdb, slow._study_id, b, numbers=[99] * len(b)) for b in batches]
    # once per process (other warnings, e.g. a ResourceWarning of an earlier test's
    # connection collected meanwhile, may land in the same record)
    assert len([w for w in caught if issubclass(w.category, OptunaSchemaWarning)]) == 1
    assert written[0].numbers == tuple(range(9)) and written[1].numbers == tuple(range(9, 16))
    monkeypatch.undo()
    fa = optuna.load_study(study_name=f"bulk_{suffix}", storage=url).trials
    fb = optuna.load_study(study_name=f"slow_{suffix}", storage=url).trials
    assert len(fa) == len(fb) == 16
    for ta, tb in zip(fa, fb, strict=True):
        assert _fields(ta) == _fields(tb)
    rdb.engine.dispose()


def test_claim_board_commits_through_the_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    study = create_or_load_study(url, "s", toy.SPACE, toy.CONFIG, seed=toy.SEED)
    rdb = RDBStorage(url)
    board = ClaimBoard(rdb, "s")
    board.open_round(0, population=4)
    assert board.claim(0, "w1", 2, stale_after=60.0) == [0, 1]
    _force_fallback(monkeypatch)
    trials = _batch(2, seed=5)
    with pytest.warns(OptunaSchemaWarning):
        assert not board.commit_chunk(0, "w2", [0, 1], trials)  # not w2's: nothing written
        assert board.commit_chunk(0, "w1", [0, 1], trials, numbers=[0, 1])
    monkeypatch.undo()
    assert board.progress(0).done == 2
    got = optuna.load_study(study_name="s", storage=url).trials
    assert [_fields(t)[1:] for t in got] == [_fields(t)[1:] for t in trials]
    assert [t.number for t in got] == [0, 1]
    del study
    rdb.engine.dispose()


def test_caller_numbers_trials_and_a_taken_number_is_refused(url: str) -> None:
    name = f"num_{uuid.uuid4().hex[:6]}"
    optuna.create_study(storage=url, study_name=name, direction="maximize")
    rdb = RDBStorage(url)
    sid = rdb.get_study_id_from_name(name)
    # a later round's chunk written before an earlier one (workers), numbered by (round, member)
    assert add_trials(rdb, sid, _batch(3, seed=1), numbers=[5, 7, 6]).numbers == (5, 7, 6)
    assert add_trials(rdb, sid, _batch(2, seed=2), numbers=[1, 0]).numbers == (1, 0)
    with pytest.raises(ValueError, match=r"trial number\(s\) \[0, 6\] already taken"):
        add_trials(rdb, sid, _batch(3, seed=3), numbers=[6, 2, 0])
    with pytest.raises(ValueError, match="distinct"):
        add_trials(rdb, sid, _batch(2, seed=3), numbers=[3, 3])
    with pytest.raises(ValueError, match="2 numbers given for 3 trials"):
        add_trials(rdb, sid, _batch(3, seed=3), numbers=[3, 4])
    # numbering by count would give 5 here, which is taken: refused, not duplicated
    with pytest.raises(ValueError, match=r"\[5\] already taken"):
        add_trials(rdb, sid, _batch(1, seed=4))
    trials = optuna.load_study(study_name=name, storage=url).trials
    assert sorted(t.number for t in trials) == [0, 1, 5, 6, 7]
    by_number = {t.number: t for t in trials}
    assert by_number[7].params == _batch(3, seed=1)[1].params
    rdb.engine.dispose()
