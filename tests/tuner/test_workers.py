"""Workers on SQLite, in this process: the one-worker case equals run_rounds, continues a
generation that run_rounds left half done, and takes over a dead worker's stale claims."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.storages import RDBStorage

from tests.tuner import toy_objective as toy
from tuner.storage import ClaimBoard, ProjectStore
from tuner.study import TrialResult, WorkerConfig, create_or_load_study, run_rounds, run_worker

optuna.logging.set_verbosity(optuna.logging.WARNING)
FAST = WorkerConfig(chunk=5, heartbeat_interval=0.1, stale_after=0.5, poll_interval=0.05)


def _trials(study: optuna.Study) -> list[tuple[Any, ...]]:
    rows = [(t.user_attrs["round"], t.user_attrs["member"], t.params, t.value, t.user_attrs)
            for t in study.get_trials()]
    return sorted(rows, key=lambda r: (r[0], r[1]))


def _study(tmp_path: Path, name: str) -> tuple[str, optuna.Study]:
    url = f"sqlite:///{tmp_path / name}"
    return url, create_or_load_study(url, "s", toy.SPACE, toy.CONFIG, seed=toy.SEED)


def _reference(tmp_path: Path, rounds: int) -> optuna.Study:
    _, ref = _study(tmp_path, "ref.db")
    run_rounds(ref, toy.SEARCH, toy.evaluate, rounds=rounds, progress=False)
    return ref


def test_one_worker_equals_run_rounds(tmp_path: Path) -> None:
    ref = _reference(tmp_path, 3)
    url, study = _study(tmp_path, "w.db")
    report = run_worker(url, "s", toy.evaluate, until=3, config=FAST)
    assert report.refits == (0, 1, 2) and report.rounds_done == 3
    assert report.evaluated == 3 * toy.CONFIG.population and report.lost == 0
    assert _trials(study) == _trials(ref)
    got = [(r.round, r.mean, r.sigma) for r in ProjectStore(url).rounds("s")]
    assert got == [(r.round, r.mean, r.sigma) for r in ProjectStore(ref_url(ref)).rounds("s")]
    # nothing left to do: a second worker refits nothing and writes nothing
    again = run_worker(url, "s", toy.evaluate, until=3, config=FAST)
    assert (again.evaluated, again.refits) == (0, ())


def ref_url(study: optuna.Study) -> str:
    from tuner.study._open import _STUDY_URLS

    return _STUDY_URLS[study]


def test_worker_finishes_a_generation_run_rounds_left_half_done(tmp_path: Path) -> None:
    ref = _reference(tmp_path, 2)
    url, study = _study(tmp_path, "half.db")
    run_rounds(study, toy.SEARCH, toy.evaluate, rounds=1, progress=False)
    real_add = study.add_trial
    added: list[Any] = []

    def add_then_crash(trial: optuna.trial.FrozenTrial) -> None:
        if len(added) == 6:
            raise KeyboardInterrupt
        added.append(trial)
        real_add(trial)

    study.add_trial = add_then_crash  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        run_rounds(study, toy.SEARCH, toy.evaluate, rounds=1, progress=False)
    seen: list[int] = []

    def counting(W: np.ndarray) -> list[TrialResult]:
        seen.append(len(W))
        return toy.evaluate(W)

    report = run_worker(url, "s", counting, until=2, config=FAST)
    assert sum(seen) == toy.CONFIG.population - 6 and report.refits == (1,)
    assert _trials(study) == _trials(ref)


def test_stale_claims_of_a_dead_worker_are_taken_over(tmp_path: Path) -> None:
    ref = _reference(tmp_path, 1)
    url, study = _study(tmp_path, "stale.db")
    board = ClaimBoard(RDBStorage(url), "s")
    board.open_round(0, toy.CONFIG.population)
    assert board.claim(0, "dead", 4, stale_after=60.0) == [0, 1, 2, 3]
    # a live claim is not handed out again
    assert board.claim(0, "other", 16, stale_after=60.0) == list(range(4, 16))
    board.release(0, "other")
    time.sleep(0.6)
    report = run_worker(url, "s", toy.evaluate, until=1, config=FAST)
    assert report.evaluated == toy.CONFIG.population
    assert board.attempts() == {(0, m): 2 for m in range(16)}
    # the dead worker cannot write its chunk any more
    assert not board.commit_chunk(0, "dead", [0, 1, 2, 3], [])
    assert _trials(study) == _trials(ref)


class _FakeWorker:
    """A ``search worker`` process that has already exited with ``code``."""

    codes: list[int] = []

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.code = _FakeWorker.codes.pop(0)

    def wait(self) -> int:
        return self.code


def test_failed_workers_are_reported_as_they_are(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Two of three workers died: if the survivor reached the target the run succeeds
    with a warning; if not, the message says how far the study got and what to run."""
    import click

    from tuner.cli import _search

    url = f"sqlite:///{tmp_path / 'w.db'}"
    study = create_or_load_study(url, "s", toy.SPACE, toy.CONFIG, seed=toy.SEED)
    run_rounds(study, toy.SEARCH, toy.evaluate, until=2, progress=False)
    monkeypatch.setattr(_search.subprocess, "Popen", _FakeWorker)
    warned: list[str] = []
    monkeypatch.setattr(click, "echo", lambda msg, err=False: warned.append(str(msg)))
    _FakeWorker.codes = [0, -9, -9]
    _search._spawn_workers(url, "s", 3, 4, target=2)
    assert warned and "others completed all 2 rounds" in warned[0]
    _FakeWorker.codes = [0, -9, -9]
    with pytest.raises(ValueError, match=r"2 of 3 complete rounds.*same command again"):
        _search._spawn_workers(url, "s", 3, 4, target=3)
