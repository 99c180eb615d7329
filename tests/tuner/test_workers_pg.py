"""Many ``fusiontune search worker`` processes on one CEM study in a real PostgreSQL.

Each test run creates a fresh database ``fusiontune_test_<random>`` through the
``postgres`` database and drops it afterwards. Without a reachable server the tests are
skipped, except under ``CI=true``, where that is a failure. The server is
``$FUSIONTUNE_TEST_PG`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy as sa
from optuna.trial import TrialState

from tests.tuner import toy_objective as toy
from tuner.storage import ProjectStore
from tuner.study import create_or_load_study, run_rounds, set_target_rounds

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 4

optuna.logging.set_verbosity(optuna.logging.WARNING)




@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Any, ...]]:
    """Trials of the same search run by one process (run_rounds) on SQLite."""
    url = f"sqlite:///{tmp_path_factory.mktemp('ref') / 'ref.db'}"
    study = create_or_load_study(url, "ref", toy.SPACE, toy.CONFIG, seed=toy.SEED)
    run_rounds(study, toy.SEARCH, toy.evaluate, rounds=ROUNDS, progress=False)
    return _trials(study)


def _trials(study: optuna.Study) -> list[tuple[Any, ...]]:
    """``(round, member, params, value, state, user attrs, number)`` of every trial, by
    member: the numbers too are the same however many workers wrote the trials."""
    rows = [
        (t.user_attrs.get("round"), t.user_attrs.get("member"), t.params, t.value,
         t.state, t.user_attrs, t.number)
        for t in study.get_trials()
    ]
    return sorted(rows, key=lambda r: (r[0], r[1]))


def _new_study(url: str) -> tuple[str, optuna.Study]:
    name = f"s{uuid.uuid4().hex[:8]}"
    study = create_or_load_study(url, name, toy.SPACE, toy.CONFIG, seed=toy.SEED)
    set_target_rounds(study, ROUNDS)
    return name, study


def _spawn(url: str, study: str, evaluate: str, chunk: int, heartbeat: float,
           stale_after: float, sleep: float) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-c", "from tuner.cli import main; main()", "search", "worker",
           "--storage", url, "--study", study, "--chunk", str(chunk), "--json",
           "--heartbeat", str(heartbeat), "--stale-after", str(stale_after),
           "--evaluate", f"tests.tuner.toy_objective:{evaluate}"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", toy.SLEEP_ENV: str(sleep),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _events(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def _finish(procs: list[subprocess.Popen[str]], timeout: float) -> list[tuple[int, str, str]]:
    deadline = time.monotonic() + timeout
    out = []
    for p in procs:
        try:
            stdout, stderr = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        out.append((p.returncode, stdout, stderr))
    return out


def _claimed_by(url: str, pid: int) -> list[tuple[int, int]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT round, member, worker FROM fusiontune_claims WHERE state = 'claimed'"))
            return [(r, m) for r, m, w in rows if w.split(":")[1] == str(pid)]
    finally:
        engine.dispose()


def _check_study(url: str, name: str, reference: list[tuple[Any, ...]],
                 events: list[dict[str, Any]]) -> ProjectStore:
    study = optuna.load_study(study_name=name, storage=url)
    got = _trials(study)
    # every member of every generation exactly once, nothing else, values included
    assert [(r[0], r[1]) for r in got] == [
        (g, m) for g in range(ROUNDS) for m in range(toy.CONFIG.population)]
    assert all(r[4] == TrialState.COMPLETE for r in got)
    assert got == reference
    # the refit of each generation happened (was recorded) exactly once
    refits = Counter(e["round"] for e in events if e["event"] == "refit")
    assert refits == Counter(range(ROUNDS)), refits
    store = ProjectStore(url)
    assert [r.round for r in store.rounds(name)] == list(range(ROUNDS))
    return store


@pytest.mark.slow
def test_four_workers_equal_one_process(pg_url: str, reference: list[tuple[Any, ...]]) -> None:
    name, _ = _new_study(pg_url)
    procs = [_spawn(pg_url, name, "slow_evaluate", 3, 0.5, 5.0, 0.1) for _ in range(4)]
    results = _finish(procs, 90)
    assert all(code == 0 for code, _, _ in results), [err[-2000:] for _, _, err in results]
    events = [e for _, out, _ in results for e in _events(out)]
    _check_study(pg_url, name, reference, events)
    chunks = [e for e in events if e["event"] == "chunk"]
    assert sum(len(e["members"]) for e in chunks) == ROUNDS * toy.CONFIG.population
    assert not [e for e in events if e["event"] == "lost"]
    reports = [e for e in events if e["event"] == "report"]
    assert len(reports) == 4 and all(r["rounds_done"] == ROUNDS for r in reports)
    assert sum(r["evaluated"] > 0 for r in reports) >= 2  # the work was shared


@pytest.mark.slow
def test_a_killed_worker_is_taken_over(pg_url: str, reference: list[tuple[Any, ...]]) -> None:
    name, _ = _new_study(pg_url)
    procs = [_spawn(pg_url, name, "slow_evaluate", 3, 0.2, 1.5, 0.6) for _ in range(4)]
    victim = procs[0]
    deadline = time.monotonic() + 60
    held: list[tuple[int, int]] = []
    while time.monotonic() < deadline and victim.poll() is None:
        held = _claimed_by(pg_url, victim.pid)
        if held and held[0][0] >= 1:  # in the middle of a chunk of round >= 1
            break
        time.sleep(0.05)
    assert held and victim.poll() is None, "the victim never held a chunk of round >= 1"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    held = _claimed_by(pg_url, victim.pid)  # what it held when it died
    assert held, "the victim finished its chunk before the kill; nothing to take over"
    results = _finish(procs, 90)
    assert results[0][0] == -signal.SIGKILL
    assert all(code == 0 for code, _, _ in results[1:]), [e[-2000:] for _, _, e in results]
    events = [e for _, out, _ in results for e in _events(out)]
    store = _check_study(pg_url, name, reference, events)
    store.close()
    # the killed chunk was claimed again by another worker, and only those members
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT round, member, attempts, state FROM fusiontune_claims "
            "WHERE study_name = :s"), {"s": name}).all()
    engine.dispose()
    assert all(state == "done" for *_, state in rows)
    retried = sorted((r, m) for r, m, a, _ in rows if a > 1)
    assert set(held) <= set(retried), (held, retried)
    survivors = [e for _, out, _ in results[1:] for e in _events(out) if e["event"] == "chunk"]
    assert any(set(held) & {(e["round"], m) for m in e["members"]} for e in survivors)
