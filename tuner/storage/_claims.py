"""Claims of CEM members by workers, and the one transaction that writes a chunk's trials.

A generation's ``M`` members get one row each in ``fusiontune_claims`` (inserted by
whichever worker first opens the round; a unique constraint makes that idempotent). A worker
claims a chunk of ``open`` rows, or ``claimed`` rows whose heartbeat is older than the stale
timeout, in one ``UPDATE ... RETURNING`` statement: on PostgreSQL its subquery takes the rows
``FOR UPDATE SKIP LOCKED``, so workers never wait on one another; on SQLite the statement
holds the database's write lock. Heartbeats and the stale test use the database's clock, so
workers on machines with skewed clocks agree.

:meth:`ClaimBoard.commit_chunk` marks the chunk ``done`` and writes its Optuna trials in one
transaction, only if the chunk is still this worker's: a worker that was presumed dead and
whose members were taken over writes nothing, so no member is ever written twice. (With an
Optuna whose schema the bulk writer does not know, the trials go through Optuna's API
first and the claims are marked after: see :meth:`ClaimBoard.commit_chunk`.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial

from tuner.storage._tables import CLAIMS_TABLE, insert_ignore
from tuner.storage._trial_writer import add_trials_one_by_one, bulk_supported, write_trials

__all__ = ["OPEN", "CLAIMED", "DONE", "ClaimBoard", "RoundProgress"]

OPEN, CLAIMED, DONE = "open", "claimed", "done"


@dataclass(frozen=True)
class RoundProgress:
    """Claim rows of one round by state, and how often its members were claimed."""

    open: int
    claimed: int
    done: int
    attempts: int

    @property
    def total(self) -> int:
        return self.open + self.claimed + self.done


def _db_now(dialect: str) -> Any:
    """The database clock in epoch seconds (float), as a SQL expression."""
    if dialect == "postgresql":
        return sa.extract("epoch", sa.func.clock_timestamp())
    return (sa.func.julianday("now") - 2440587.5) * 86400.0


class ClaimBoard:
    """Claims of one study's members in the database of an Optuna :class:`RDBStorage`.

    Args:
        rdb: the study's storage; its engine carries every statement.
        study_name: the study.

    Example:
        >>> board = ClaimBoard(RDBStorage("sqlite:///s.db"), "s")  # doctest: +SKIP
        >>> board.open_round(0, population=8)  # doctest: +SKIP
        >>> board.claim(0, "w1", 4, stale_after=30.0)  # doctest: +SKIP
        [0, 1, 2, 3]
    """

    def __init__(self, rdb: RDBStorage, study_name: str) -> None:
        self.rdb = rdb
        self.study_name = study_name
        self._engine: sa.Engine = rdb.engine
        self._dialect = self._engine.dialect.name
        self._now = _db_now(self._dialect)

    def _mine(self, g: int) -> Any:
        t = CLAIMS_TABLE
        return (t.c.study_name == self.study_name) & (t.c.round == g)

    def open_round(self, g: int, population: int, done: Sequence[int] = ()) -> int:
        """Insert the claim rows of round ``g`` unless present; members in ``done`` already
        have trials (e.g. written by a single-process run) and are never handed out.

        Returns:
            Rows this call inserted (0 when another worker opened the round first).
        """
        rows = [
            {
                "study_name": self.study_name,
                "round": g,
                "member": m,
                "state": DONE if m in set(done) else OPEN,
                "attempts": 0,
            }
            for m in range(population)
        ]
        stmt = insert_ignore(CLAIMS_TABLE, self._dialect).returning(CLAIMS_TABLE.c.id)
        with self._engine.begin() as conn:
            return len(conn.execute(stmt, rows).all())

    def claim(self, g: int, worker: str, n: int, stale_after: float) -> list[int]:
        """Claim up to ``n`` members of round ``g``: open ones, or ones whose claim has had
        no heartbeat for ``stale_after`` seconds. Returns the members, ascending."""
        t = CLAIMS_TABLE
        claimable = (t.c.state == OPEN) | (
            (t.c.state == CLAIMED) & (t.c.heartbeat_at < self._now - stale_after)
        )
        sub = select_ids = (
            sa.select(t.c.id).where(self._mine(g) & claimable).order_by(t.c.member).limit(n)
        )
        if self._dialect == "postgresql":
            sub = select_ids.with_for_update(skip_locked=True)
        stmt = (
            sa.update(t)
            .where(t.c.id.in_(sub.scalar_subquery()))
            .values(state=CLAIMED, worker=worker, heartbeat_at=self._now,
                    attempts=t.c.attempts + 1)
            .returning(t.c.member)
        )
        with self._engine.begin() as conn:
            return sorted(int(m) for m in conn.execute(stmt).scalars())

    def heartbeat(self, g: int, worker: str) -> int:
        """Refresh the heartbeat of this worker's claims in round ``g``; rows touched."""
        t = CLAIMS_TABLE
        stmt = (
            sa.update(t)
            .where(self._mine(g) & (t.c.worker == worker) & (t.c.state == CLAIMED))
            .values(heartbeat_at=self._now)
        )
        with self._engine.begin() as conn:
            return int(conn.execute(stmt).rowcount)

    def release(self, g: int, worker: str) -> int:
        """Hand this worker's unfinished claims of round ``g`` back; rows touched."""
        t = CLAIMS_TABLE
        stmt = (
            sa.update(t)
            .where(self._mine(g) & (t.c.worker == worker) & (t.c.state == CLAIMED))
            .values(state=OPEN, worker=None, heartbeat_at=None)
        )
        with self._engine.begin() as conn:
            return int(conn.execute(stmt).rowcount)

    def progress(self, g: int) -> RoundProgress:
        """Counts of round ``g``'s claim rows by state."""
        t = CLAIMS_TABLE
        stmt = (
            sa.select(t.c.state, sa.func.count(), sa.func.sum(t.c.attempts))
            .where(self._mine(g))
            .group_by(t.c.state)
        )
        with self._engine.connect() as conn:
            rows = {s: (int(c), int(a or 0)) for s, c, a in conn.execute(stmt)}
        return RoundProgress(
            open=rows.get(OPEN, (0, 0))[0],
            claimed=rows.get(CLAIMED, (0, 0))[0],
            done=rows.get(DONE, (0, 0))[0],
            attempts=sum(a for _, a in rows.values()),
        )

    def attempts(self) -> dict[tuple[int, int], int]:
        """``(round, member) -> times claimed`` over the whole study."""
        t = CLAIMS_TABLE
        stmt = sa.select(t.c.round, t.c.member, t.c.attempts).where(
            t.c.study_name == self.study_name
        )
        with self._engine.connect() as conn:
            return {(int(r), int(m)): int(a) for r, m, a in conn.execute(stmt)}

    def commit_chunk(
        self,
        g: int,
        worker: str,
        members: Sequence[int],
        trials: Sequence[FrozenTrial],
        numbers: Sequence[int] | None = None,
    ) -> bool:
        """Mark ``members`` of round ``g`` done and add their ``trials``, in one transaction.

        Nothing is written unless every member is still claimed by ``worker``.

        If the installed Optuna's schema is not the one the bulk writer writes
        (:func:`~tuner.storage._trial_writer.bulk_supported`), the two cannot share a
        transaction: the claims are checked, the trials are added through Optuna's API
        (numbered by arrival, ``numbers`` ignored) and the claims are marked done after.
        What is lost: a crash between the write and the mark, or a takeover of a stale
        claim in between, leaves members whose trials are written but whose claims are not
        done, so another worker evaluates and writes them again. The duplicate has a higher
        trial number, and readers keep the first trial of each ``(round, member)`` by number.

        Args:
            g: the round.
            worker: the worker that claimed ``members``.
            members: the chunk's members.
            trials: their trials.
            numbers: the trials' numbers (e.g. ``g * population + member``); default the
                next free ones.

        Returns:
            True if written; False if another worker took over some of the members (the
            caller should drop the chunk).

        Raises:
            ValueError: a number is already taken (nothing is written then).
        """
        t = CLAIMS_TABLE
        ours = (
            self._mine(g)
            & t.c.member.in_(list(members))
            & (t.c.worker == worker)
            & (t.c.state == CLAIMED)
        )
        mark = sa.update(t).where(ours).values(state=DONE, heartbeat_at=self._now)
        study_id = self.rdb.get_study_id_from_name(self.study_name)
        if not bulk_supported():
            with self._engine.connect() as conn:
                held = conn.execute(sa.select(sa.func.count()).select_from(t).where(ours))
                if held.scalar_one() != len(members):
                    return False
            add_trials_one_by_one(self.rdb, study_id, trials)
            with self._engine.begin() as conn:
                conn.execute(mark)
            return True
        with self.rdb.engine.connect() as conn:
            if conn.execute(mark).rowcount != len(members):
                conn.rollback()
                return False
            # a few multi-row INSERTs under Optuna's lock of the study row
            write_trials(conn, study_id, trials, numbers)
            conn.commit()
        return True
