"""A study read as a snapshot of its rows is the study Optuna's RDBStorage reads, and
``search history`` reads it so, with no Optuna storage and no alembic."""

from __future__ import annotations

import json
import math
import os
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import RDBStorage
from optuna.trial import TrialState, create_trial

from tuner.storage import ReadOnlyStudyError, StudySnapshot, add_trials, read_snapshot
from tuner.study import history, load_search, read_search

REPO = Path(__file__).resolve().parents[2]


def _rich_study(url: str) -> None:
    """Trials of every state, params of three kinds, attrs, intermediate values, infinite
    and multi-objective values, gapped numbers."""
    study = optuna.create_study(storage=url, study_name="s", directions=["maximize", "minimize"])
    study.set_user_attr("fusiontune:note", {"a": [1, 2.5, None]})
    study._storage.set_study_system_attr(study._study_id, "sys", "x")
    start = datetime(2026, 11, 30, 12, 0, 0)
    dists = {"x": FloatDistribution(0.0, 4.0), "n": IntDistribution(1, 9, step=2),
             "c": CategoricalDistribution(["a", "b", None])}
    trials = [
        create_trial(state=TrialState.COMPLETE, values=[1.5, -math.inf],
                     params={"x": 0.25, "n": 3, "c": None}, distributions=dists,
                     user_attrs={"round": 0, "ci": [0.1, 0.2]}, system_attrs={"k": 1},
                     intermediate_values={0: 0.5, 1: math.nan, 2: math.inf}),
        create_trial(state=TrialState.FAIL, params={"x": 3.5, "n": 9, "c": "b"},
                     distributions=dists, user_attrs={"fail_reason": "boom"}),
        create_trial(state=TrialState.COMPLETE, values=[math.inf, 2.0], params={"x": 1.0},
                     distributions={"x": dists["x"]}),
    ]
    for i, t in enumerate(trials):
        t.datetime_start = start + timedelta(seconds=i)
        t.datetime_complete = start + timedelta(seconds=i, milliseconds=250)
    # gapped numbers, as a run's workers number them
    add_trials(RDBStorage(url), study._study_id, trials, numbers=[0, 5, 7])
    running = study.ask()  # RUNNING, then a WAITING one
    running.set_user_attr("member", 3)
    study.enqueue_trial({"x": 2.0})


def _opened(tmp_path: Path, scheme: str = "sqlite") -> tuple[str, StudySnapshot, optuna.Study]:
    """The rich study's URL, its snapshot and the study opened on the snapshot; scheme
    ``sqlite`` is read through sqlite3, any other (``sqlite+pysqlite``) through
    SQLAlchemy, as other databases are."""
    url = f"{scheme}:///{tmp_path / 's.db'}"
    _rich_study(url)
    snapshot = read_snapshot(url, "s")
    assert snapshot is not None
    return url, snapshot, optuna.load_study(study_name="s", storage=snapshot)


@pytest.mark.parametrize("scheme", ["sqlite", "sqlite+pysqlite"])
def test_a_snapshot_holds_what_rdbstorage_reads_field_by_field(tmp_path: Path,
                                                               scheme: str) -> None:
    url, snapshot, read = _opened(tmp_path, scheme)
    real = optuna.load_study(study_name="s", storage=url)
    assert [t.number for t in read.trials] == [t.number for t in real.trials] == [0, 3, 4, 5, 7]
    assert [t.state for t in read.trials] == [t.state for t in real.trials]
    for a, b in zip(read.trials, real.trials, strict=True):
        assert a.__dict__.keys() == b.__dict__.keys()
        for key in a.__dict__:
            x, y = a.__dict__[key], b.__dict__[key]
            if key == "intermediate_values":  # nan != nan
                assert json.dumps(x) == json.dumps(y)
            else:
                assert x == y, (a.number, key, x, y)
    assert read.directions == real.directions
    assert read.user_attrs == real.user_attrs == {"fusiontune:note": {"a": [1, 2.5, None]}}
    assert (snapshot.get_study_system_attrs(read._study_id)
            == real._storage.get_study_system_attrs(real._study_id) == {"sys": "x"})
    waiting = read.get_trials(states=(TrialState.WAITING,))
    assert waiting[0].system_attrs["fixed_params"] == {"x": 2.0}


def test_a_snapshot_refuses_every_write(tmp_path: Path) -> None:
    url, _, study = _opened(tmp_path)
    with pytest.raises(ReadOnlyStudyError, match="read-only"):
        study.set_user_attr("k", 1)
    with pytest.raises(ReadOnlyStudyError, match="read-only"):
        study.ask()
    assert "k" not in optuna.load_study(study_name="s", storage=url).user_attrs


def test_a_missing_study_and_other_revisions(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    url = f"sqlite:///{path}"
    _rich_study(url)
    with pytest.raises(KeyError, match="nope"):
        read_snapshot(url, "nope")
    with sqlite3.connect(path) as con:  # Optuna's tables at another revision
        con.execute("UPDATE alembic_version SET version_num = 'v9.9.9'")
    assert read_snapshot(url, "s") is None


def _toy_study(url: str, rounds: int) -> None:
    """A fusiontune study of ``rounds`` complete CEM rounds of 16."""
    from tests.tuner.toy_objective import CONFIG, SEARCH, SEED, SPACE, evaluate
    from tuner.study import create_or_load_study, run_rounds

    study = create_or_load_study(url, "h", SPACE, CONFIG, SEED)
    run_rounds(study, SEARCH, evaluate, rounds=rounds, progress=False)


def test_read_search_gives_the_history_that_load_search_gives(tmp_path: Path) -> None:
    from tuner.study._history import completed_rounds

    url = f"sqlite:///{tmp_path / 'h.db'}"
    _toy_study(url, rounds=3)
    (read, spec_r), (loaded, spec_l) = read_search(url, "h"), load_search(url, "h")
    assert spec_r.attrs() == spec_l.attrs()
    got = history(read, spec_r)
    assert [r.to_dict() for r in got] == [r.to_dict() for r in history(loaded, spec_l)]
    assert [r.round for r in got] == [0, 1, 2] and got[-1].best_value > got[0].best_value
    assert completed_rounds(read, 16) == completed_rounds(loaded, 16) == 3
    with pytest.raises(ValueError, match="no study named 'x'"):
        read_search(url, "x")


def test_search_history_opens_no_optuna_storage(tmp_path: Path) -> None:
    """The read-only path is what the command takes: alembic is never imported (Optuna's
    RDBStorage imports it whenever it is built) and the database is not written."""
    db = tmp_path / "h.db"
    _toy_study(f"sqlite:///{db}", rounds=2)
    before = db.stat().st_mtime_ns, db.read_bytes()
    code = ("import sys; from tuner.cli import main\n"
            f"sys.argv = ['fusiontune', 'search', 'history', '--storage', {str(db)!r}, "
            "'--study', 'h', '--json']\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print('ALEMBIC' if 'alembic' in sys.modules else 'NO-ALEMBIC')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, check=True).stdout
    rounds = json.loads(out[: out.rindex("]") + 1])
    assert [r["round"] for r in rounds] == [0, 1] and out.rstrip().endswith("NO-ALEMBIC")
    assert (db.stat().st_mtime_ns, db.read_bytes()) == before


# what reading a SQLite study must not import: SQLAlchemy (a SQLite file is read through
# sqlite3), the ORM (Optuna's models, the project tables), the migrations, the modules that
# write or run rounds, torch and the estimators
NOT_ON_THE_READ_PATH = (
    "sqlalchemy", "sqlalchemy.orm", "optuna.storages._rdb.models", "alembic", "torch", "scipy",
    "tuner.storage._tables", "tuner.storage._claims", "tuner.storage._trial_writer",
    "tuner.study._loop", "tuner.study._live", "tuner.study._workers", "simulator.estimators",
    "simulator.replay",
)


@pytest.mark.parametrize("args", [["--json"], [], ["--trials"], ["--trials", "--json"]],
                         ids=["json", "rounds", "trials", "trials-json"])
def test_search_history_imports_nothing_that_writes(tmp_path: Path, args: list[str]) -> None:
    """``search history`` (all but ``--plot``) imports none of NOT_ON_THE_READ_PATH, and
    prints the same as in a process where they were all imported first."""
    db = tmp_path / "h.db"
    _toy_study(f"sqlite:///{db}", rounds=2)
    argv = ["fusiontune", "search", "history", "--storage", str(db), "--study", "h", *args]
    code = ("import sys\n{pre}from tuner.cli import main\n"
            f"sys.argv = {argv!r}\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            f"print([m for m in {NOT_ON_THE_READ_PATH!r} if m in sys.modules], "
            "file=sys.stderr)")

    def run(pre: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", code.format(pre=pre)],
                              capture_output=True, text=True, check=True, cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)})

    light = run("")
    assert light.stderr.strip().splitlines()[-1] == "[]", light.stderr
    heavy = run("import sqlalchemy.orm, tuner.storage._tables, tuner.study._loop, "
                "tuner.cli._search\n")
    assert light.stdout.strip() and light.stdout == heavy.stdout
