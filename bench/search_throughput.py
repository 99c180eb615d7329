"""Search throughput: trials/s of our batched CEM ask/tell against Optuna's TPE with one trial
per transaction, on SQLite and PostgreSQL, and scaling of worker processes on PostgreSQL.

Baseline (DESIGN.md, these 2-core machines): Optuna TPE, trivial objective, one trial per
transaction, ~34 trials/s on SQLite and ~32/s on PostgreSQL; 8 workers ~27/s together.

Every measurement gets a fresh database: a new SQLite file, or a PostgreSQL database
``fusiontune_bench_<random>`` created and dropped through the ``postgres`` database of
``--pg`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``).

Measured:

1. ``run_rounds`` (CEM, population ``--population``) with the trivial vectorised objective of
   ``tests/tuner/toy_objective.py``: trials / wall time of the whole call (sampling, writing
   each generation's trials in one bulk transaction, reading them back to refit CEM, round
   summaries). Also the same with one ``add_trial`` per trial (the former write path).
2. Optuna: ``study.optimize`` with TPE and a trivial 3-parameter objective.
3. ``--workers`` processes (``tuner.study.run_worker``) on one PostgreSQL study: total
   trials / time from the first claim (first ``evaluate`` call) to the last chunk written,
   with the trivial objective and with a per-trial evaluation cost ``--cost-ms`` (a sleep of
   ``cost * rows`` per chunk, standing in for a replay), where extra workers can help even on
   2 cores.

Run: ``python bench/search_throughput.py`` (``--quick`` for a shorter run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import optuna  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from tests.tuner import toy_objective as toy  # noqa: E402
from tuner.strategies import CEMConfig  # noqa: E402
from tuner.study import SearchSpec, TrialResult, create_or_load_study, run_rounds  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextmanager
def fresh_db(kind: str, pg_admin: str) -> Iterator[str]:
    """URL of a new empty database of ``kind`` (sqlite/postgresql), removed afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as d:
            yield f"sqlite:///{Path(d) / 'bench.db'}"
        return
    admin = sa.create_engine(pg_admin, isolation_level="AUTOCOMMIT")
    name = f"fusiontune_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def cem_rate(url: str, population: int, rounds: int, per_trial_writes: bool = False) -> float:
    """trials/s of ``run_rounds`` with the trivial vectorised toy objective."""
    config = CEMConfig(population=population)
    study = create_or_load_study(url, "bench", toy.SPACE, config, seed=toy.SEED)
    if per_trial_writes:  # a replaced add_trial makes run_rounds write trial by trial
        study.add_trial = study.add_trial  # type: ignore[method-assign]
    t0 = time.perf_counter()
    search = SearchSpec.new(toy.SPACE, config, toy.SEED)
    run_rounds(study, search, toy.evaluate, rounds=rounds, progress=False)
    dt = time.perf_counter() - t0
    n = len(study.get_trials(deepcopy=False))
    assert n == population * rounds, n
    return n / dt


def optuna_rate(url: str, n_trials: int) -> float:
    """trials/s of TPE ``study.optimize``, trivial objective, one trial per transaction."""

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 5.0)
        y = trial.suggest_float("y", 0.0, 5.0)
        z = trial.suggest_float("z", 0.0, 5.0)
        return -((x - 1) ** 2 + (y - 2.5) ** 2 + (z - 0.7) ** 2)

    study = optuna.create_study(
        storage=url, direction="maximize", sampler=optuna.samplers.TPESampler(seed=0)
    )
    t0 = time.perf_counter()
    study.optimize(objective, n_trials=n_trials)
    return n_trials / (time.perf_counter() - t0)


def costly(cost_s: float) -> Callable[[np.ndarray], list[TrialResult]]:
    def evaluate(W: np.ndarray) -> list[TrialResult]:
        time.sleep(cost_s * len(W))
        return toy.evaluate(W)

    return evaluate


def _worker_main(url: str, study: str, until: int, chunk: int, cost_s: float) -> None:
    """One worker process: prints ``{"first": t, "last": t, "evaluated": n}`` (epoch s)."""
    from tuner.study import WorkerConfig, run_worker

    times: dict[str, float] = {}
    inner = costly(cost_s) if cost_s > 0 else toy.evaluate

    def evaluate(W: np.ndarray) -> list[TrialResult]:
        times.setdefault("first", time.time())  # just after this worker's first claim
        return inner(W)

    def on_event(event: dict) -> None:
        if event["event"] == "chunk":
            times["last"] = time.time()  # just after the chunk's transaction committed

    config = WorkerConfig(chunk=chunk, poll_interval=0.01, heartbeat_interval=5.0)
    report = run_worker(url, study, evaluate, until=until, config=config, on_event=on_event)
    print(json.dumps({**times, "evaluated": report.evaluated}))


def workers_rate(
    url: str, n_workers: int, population: int, rounds: int, chunk: int, cost_s: float
) -> float:
    """Total trials / (last chunk written - first claim) of ``n_workers`` processes."""
    config = CEMConfig(population=population)
    study = create_or_load_study(url, "w", toy.SPACE, config, seed=toy.SEED)
    del study
    cmd = [sys.executable, __file__, "--_worker", url, "w", str(rounds), str(chunk),
           str(cost_s)]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        for _ in range(n_workers)
    ]
    outs = []
    for p in procs:
        out, _ = p.communicate(timeout=900)
        if p.returncode != 0:
            raise RuntimeError(f"worker exited with {p.returncode}")
        outs.append(json.loads(out.strip().splitlines()[-1]))
    done = [o for o in outs if o["evaluated"]]
    total = sum(o["evaluated"] for o in outs)
    assert total == population * rounds, total
    return total / (max(o["last"] for o in done) - min(o["first"] for o in done))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pg", default=os.environ.get("FUSIONTUNE_TEST_PG", PG_ADMIN))
    ap.add_argument("--population", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--optuna-trials", type=int, default=300)
    ap.add_argument("--workers", default="1,2,4,8")
    ap.add_argument("--chunk", type=int, default=16)
    ap.add_argument("--cost-ms", type=float, default=5.0, help="per-trial evaluation cost")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--_worker", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args._worker:
        url, study, until, chunk, cost = args._worker
        _worker_main(url, study, int(until), int(chunk), float(cost))
        return
    if args.quick:
        args.rounds, args.optuna_trials = 2, 100
    pop, rounds = args.population, args.rounds
    print(f"# CEM population {pop}, {rounds} rounds ({pop * rounds} trials); "
          f"Optuna TPE {args.optuna_trials} trials; python {sys.version.split()[0]}, "
          f"optuna {optuna.__version__}, {os.cpu_count()} cores")
    print(f"{'storage':<11} {'ours trials/s':>14} {'per-trial writes':>17} "
          f"{'Optuna TPE':>11} {'ours/Optuna':>12}")
    for kind in ("sqlite", "postgresql"):
        with fresh_db(kind, args.pg) as url:
            ours = cem_rate(url, pop, rounds)
        with fresh_db(kind, args.pg) as url:
            old = cem_rate(url, pop, 1, per_trial_writes=True)
        with fresh_db(kind, args.pg) as url:
            tpe = optuna_rate(url, args.optuna_trials)
        print(f"{kind:<11} {ours:>14.0f} {old:>17.1f} {tpe:>11.1f} {ours / tpe:>11.1f}x")
    ns = [int(n) for n in args.workers.split(",")]
    for cost_ms in (0.0, args.cost_ms):
        label = "trivial objective" if cost_ms == 0 else f"{cost_ms:g} ms per trial (sleep)"
        print(f"\n# workers on one PostgreSQL study, {label}, chunk {args.chunk}, "
              f"population {pop}, {rounds} rounds")
        print(f"{'workers':>7} {'trials/s':>10} {'vs 1 worker':>12}")
        base = None
        for n in ns:
            with fresh_db("postgresql", args.pg) as url:
                rate = workers_rate(url, n, pop, rounds, args.chunk, cost_ms / 1000)
            base = base or rate
            print(f"{n:>7} {rate:>10.0f} {rate / base:>11.2f}x")
        if cost_ms > 0:
            print(f"{'ideal':>7} {1000 / cost_ms:>10.0f}   (one worker, evaluation alone)")


if __name__ == "__main__":
    main()
