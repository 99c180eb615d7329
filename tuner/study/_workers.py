"""Many worker processes on one study: claimed chunks, a barrier per generation.

Every worker runs :func:`run_worker` against the same database (PostgreSQL for workers on
many machines; SQLite works for processes on one machine). A generation of the study's
strategy (any of :data:`tuner.strategies.STRATEGIES`) is a barrier:

1. Its ``M`` members get one claim row each (:class:`~tuner.storage.ClaimBoard`, inserted
   idempotently by whichever worker gets there first).
2. A worker claims a chunk of members atomically, evaluates the chunk in one vectorized
   call of ``evaluate`` while a thread refreshes its heartbeat, then writes the chunk's
   trials and marks its claims done in one transaction (only if the claims are still its
   own). A worker that dies leaves claims whose heartbeat goes stale; after
   ``stale_after`` seconds another worker claims them again.
3. When every member of the generation is done, each worker reads the generation's trials
   and tells its own copy of the strategy: the state is a deterministic function of the
   seed and the completed generations, so all workers derive the same next state. The round
   summary is recorded once, under the unique constraint of ``fusiontune_rounds``; the
   worker whose insert wins reports the refit (``refits`` of its :class:`WorkerReport`).

Population ``g`` is ``strategy.ask(g)`` from the state replayed from the trials, exactly as
in :func:`tuner.study.run_rounds`, so with a row-wise ``evaluate`` the trials equal those of a
single-process run with the same seed, whatever the number of workers or crashes.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from tuner.storage import ClaimBoard, ProjectStore, TrialNumberTaken
from tuner.study._live import check_no_open_live_round
from tuner.study._loop import advance
from tuner.study._open import load_search
from tuner.study._round_records import record_round_once
from tuner.study._trials import (
    TrialResult,
    _arrays,
    _frozen,
    _generations,
    _select_members,
    member_numbers,
)

__all__ = [
    "ATTR_TARGET",
    "WorkerConfig",
    "WorkerReport",
    "run_worker",
    "set_target_rounds",
    "worker_id",
]

ATTR_TARGET = "fusiontune:target_rounds"
"""Study user attr: complete generations the workers run to (set by ``search run``)."""

Event = dict[str, Any]


@dataclass(frozen=True)
class WorkerConfig:
    """How a worker claims and keeps its claims.

    Args:
        chunk: members claimed (and evaluated in one call) at a time.
        heartbeat_interval: seconds between heartbeats while evaluating.
        stale_after: seconds without a heartbeat after which a claim is presumed dead and
            handed to another worker; well above ``heartbeat_interval``.
        poll_interval: seconds between looks at the database while waiting for the other
            workers to finish a generation.
    """

    chunk: int = 8
    heartbeat_interval: float = 5.0
    stale_after: float = 60.0
    poll_interval: float = 0.25

    def __post_init__(self) -> None:
        if self.chunk < 1:
            raise ValueError(f"WorkerConfig.chunk is {self.chunk}; need >= 1")
        if not self.heartbeat_interval > 0:
            raise ValueError(
                f"WorkerConfig.heartbeat_interval is {self.heartbeat_interval}; need > 0"
            )
        if not self.stale_after >= 2 * self.heartbeat_interval:
            raise ValueError(
                f"WorkerConfig.stale_after is {self.stale_after}; need at least twice the "
                f"heartbeat interval ({self.heartbeat_interval}) so live workers keep claims"
            )
        if not self.poll_interval > 0:
            raise ValueError(f"WorkerConfig.poll_interval is {self.poll_interval}; need > 0")


@dataclass(frozen=True)
class WorkerReport:
    """What one worker did.

    Args:
        worker: its id.
        evaluated: members it evaluated and wrote.
        chunks: chunks it wrote.
        lost: chunks it evaluated but could not write (taken over as stale meanwhile).
        refits: rounds whose summary (the record of the refit) this worker inserted.
        rounds_done: complete generations of the study when it stopped.
    """

    worker: str
    evaluated: int = 0
    chunks: int = 0
    lost: int = 0
    refits: tuple[int, ...] = ()
    rounds_done: int = 0


def worker_id() -> str:
    """``host:pid:random``, unique across machines and restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def set_target_rounds(study: optuna.Study, target: int) -> None:
    """Tell the study's workers to run until it has ``target`` complete generations."""
    if target < 0:
        raise ValueError(f"target rounds is {target}; need >= 0")
    study.set_user_attr(ATTR_TARGET, int(target))


def run_worker(
    storage: str,
    study_name: str,
    evaluate: Callable[[np.ndarray], Sequence[TrialResult]],
    until: int | None = None,
    config: WorkerConfig | None = None,
    worker: str | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> WorkerReport:
    """Work on a study until it has ``until`` complete generations.

    Args:
        storage: SQLAlchemy URL of the study's database.
        study_name: a study made by :func:`tuner.study.create_or_load_study`.
        evaluate: maps full weight vectors ``W [M', T]`` to ``M'`` results, in order; must be
            row-wise for the trials to be independent of how members are chunked.
        until: complete generations to reach; default the study's ``fusiontune:target_rounds``.
        config: claiming settings.
        worker: this worker's id (default :func:`worker_id`).
        on_event: called with ``{"event": "chunk"|"lost"|"refit", "round": g, ...}``.

    Returns:
        What this worker did.

    Raises:
        ValueError: no ``until`` given and none stored, or the study is unknown.
    """
    config = config or WorkerConfig()
    me = worker or worker_id()
    emit = on_event or (lambda event: None)
    study, search = load_search(storage, study_name)
    check_no_open_live_round(study)
    space = search.space
    target = _target(study, until)
    rdb = RDBStorage(storage)
    study_id = rdb.get_study_id_from_name(study_name)
    board = ClaimBoard(rdb, study_name)
    store = ProjectStore(storage)
    strategy = search.build()
    m_pop = search.population
    g = 0  # the generation this worker's strategy asks next
    evaluated = chunks = lost = 0
    refits: list[int] = []

    def finished() -> list[FrozenTrial]:
        trials = rdb.get_all_trials(
            study_id, deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)
        )
        return _select_members(trials)

    partial: list[int] = []
    recorded = {r.round for r in store.rounds(study_name)}
    for g, members, complete in _generations(finished(), m_pop):
        if not complete:
            partial = [t.user_attrs["member"] for t in members]
            break
        if g not in recorded and record_round_once(store, study_name, g, members, strategy,
                                                   space):
            refits.append(g)
            emit({"event": "refit", "round": g, "worker": me})
        advance(strategy, g, *_arrays(space, members))
        g += 1
    opened: set[int] = set()
    try:
        while g < int(target):
            if g not in opened:
                board.open_round(g, m_pop, done=partial)
                opened.add(g)
                partial = []
            mine = board.claim(g, me, config.chunk, config.stale_after)
            if mine:
                X = strategy.ask(g)
                start = datetime.now()  # naive local time, as Optuna stores its own
                with _heartbeat(board, g, me, config.heartbeat_interval):
                    results = list(evaluate(space.matrix_to_weights(X[mine])))
                if len(results) != len(mine):
                    board.release(g, me)
                    raise ValueError(
                        f"evaluate returned {len(results)} results for {len(mine)} weight "
                        "vectors; it must return one per row, in order"
                    )
                trials = [
                    _frozen(space, g, m, X[m], r, start)
                    for m, r in zip(mine, results, strict=True)
                ]
                if _commit(board, g, me, mine, trials, member_numbers(g, mine, m_pop)):
                    evaluated += len(mine)
                    chunks += 1
                    emit({"event": "chunk", "round": g, "members": mine, "worker": me})
                else:
                    lost += 1
                    board.release(g, me)
                    emit({"event": "lost", "round": g, "members": mine, "worker": me})
                continue
            progress = board.progress(g)
            if progress.done < m_pop:
                time.sleep(config.poll_interval)
                continue
            by_round = {r: ms for r, ms, ok in _generations(finished(), m_pop) if ok}
            if g not in by_round:
                raise RuntimeError(
                    f"round {g} of study {study_name!r}: every claim is done but its trials "
                    "are incomplete; was a trial deleted?"
                )
            if record_round_once(store, study_name, g, by_round[g], strategy, space):
                refits.append(g)
                emit({"event": "refit", "round": g, "worker": me})
            advance(strategy, g, *_arrays(space, by_round[g]))
            g += 1
    except BaseException:
        board.release(g, me)
        raise
    finally:
        store.close()
        rdb.engine.dispose()
    return WorkerReport(me, evaluated, chunks, lost, tuple(refits), g)


def _commit(board: ClaimBoard, g: int, worker: str, members: list[int],
            trials: list[FrozenTrial], numbers: list[int]) -> bool:
    """:meth:`ClaimBoard.commit_chunk` numbered by round and member, or by arrival where
    those numbers are taken (a study that also holds trials other than its members)."""
    try:
        return board.commit_chunk(g, worker, members, trials, numbers)
    except TrialNumberTaken:
        return board.commit_chunk(g, worker, members, trials)


def _target(study: optuna.Study, until: int | None) -> int:
    """The complete generations to reach: ``until``, else the study's stored target.

    Raises:
        ValueError: a Pareto study, or no target at all.
    """
    name = study.study_name
    if len(study.directions) > 1:
        raise ValueError(f"study {name!r} is a Pareto study; workers share 'search run' "
                         "studies only (continue it with 'fusiontune search pareto')")
    target = until if until is not None else study.user_attrs.get(ATTR_TARGET)
    if target is None:
        raise ValueError(
            f"study {name!r} has no target number of rounds; start the workers with "
            "'fusiontune search run --workers N' or give --until"
        )
    return int(target)


@contextmanager
def _heartbeat(board: ClaimBoard, g: int, worker: str, interval: float) -> Iterator[None]:
    """Refresh the worker's claims every ``interval`` seconds while the body runs."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            # a missed beat is retried at the next interval; at worst the claim goes stale
            # and the chunk is lost (not written), never duplicated
            with contextlib.suppress(Exception):
                board.heartbeat(g, worker)

    thread = threading.Thread(target=beat, name=f"heartbeat-{worker}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
