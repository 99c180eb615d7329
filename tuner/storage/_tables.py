"""fusiontune's own tables, beside Optuna's in the same database.

Optuna has no place for CEM round summaries, exported weight vectors or the claims of
workers; they live here. ``METADATA`` describes the tables at the newest alembic revision
(``tuner/storage/migrations``), which :meth:`ProjectStore.ensure_schema` upgrades a database
to; ORM rows never leave this package, callers get frozen records.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    create_engine,
    delete,
    insert,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from tuner.storage._check import check_storage, storage_error
from tuner.storage._migrate import HEAD, SchemaVersionError, migrate

__all__ = [
    "HEAD",
    "METADATA",
    "ExportRecord",
    "ProjectStore",
    "RoundRecord",
    "SchemaVersionError",
    "insert_ignore",
]

METADATA = MetaData()

ROUNDS_TABLE = Table(
    "fusiontune_rounds",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("study_name", String(512), nullable=False, index=True),
    Column("round", Integer, nullable=False),
    Column("n_trials", Integer, nullable=False),
    Column("best_value", Float, nullable=True),  # NULL: no finite value in the round
    Column("best_low", Float, nullable=True),
    Column("best_high", Float, nullable=True),
    Column("best_trial", Integer, nullable=True),
    Column("mean", JSON, nullable=False),
    Column("sigma", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("study_name", "round", name="uq_fusiontune_rounds_study_round"),
)

EXPORTS_TABLE = Table(
    "fusiontune_exports",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("study_name", String(512), nullable=False, index=True),
    Column("trial_number", Integer, nullable=True),
    Column("path", String(4096), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

CLAIMS_TABLE = Table(
    "fusiontune_claims",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("study_name", String(512), nullable=False),
    Column("round", Integer, nullable=False),
    Column("member", Integer, nullable=False),
    Column("state", String(16), nullable=False),  # open | claimed | done
    Column("worker", String(256), nullable=True),
    Column("heartbeat_at", Float, nullable=True),  # epoch seconds, database clock
    Column("attempts", Integer, nullable=False, server_default="0"),
    UniqueConstraint(
        "study_name", "round", "member", name="uq_fusiontune_claims_study_round_member"
    ),
)


def insert_ignore(table: Table, dialect: str) -> Any:
    """``INSERT`` that skips rows clashing with a unique constraint (PostgreSQL, SQLite)."""
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    raise ValueError(
        f"fusiontune's workers support PostgreSQL and SQLite databases, not {dialect}"
    )


@dataclass(frozen=True)
class RoundRecord:
    """One CEM round of one study, as stored.

    Non-finite ``best_*`` values are stored as NULL and read back as NaN; ``best_trial`` is
    -1 when the round has no completed trial. ``mean``/``sigma`` are keyed by task.
    """

    study_name: str
    round: int
    n_trials: int
    best_value: float
    best_low: float
    best_high: float
    best_trial: int
    mean: dict[str, float]
    sigma: dict[str, float]
    created_at: datetime


@dataclass(frozen=True)
class ExportRecord:
    """One exported weight vector: where it was written and what it said."""

    study_name: str
    trial_number: int | None
    path: str
    payload: dict[str, Any]
    created_at: datetime


class ProjectStore:
    """Reads and writes fusiontune's tables in the database at ``storage_url``.

    Args:
        storage_url: SQLAlchemy URL, the same as the Optuna storage, e.g.
            ``"sqlite:///search.db"``.

    Example:
        >>> store = ProjectStore("sqlite://")
        >>> store.ensure_schema()
        '0002'
    """

    def __init__(self, storage_url: str) -> None:
        self.url = storage_url
        self._engine: Engine = create_engine(storage_url)
        self._checked = False

    def close(self) -> None:
        """Release the connection pool."""
        self._engine.dispose()

    def __enter__(self) -> ProjectStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _session(self) -> Iterator[Session]:
        """The one way to touch the tables: commit on success, roll back on error."""
        with Session(self._engine) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def ensure_schema(self) -> str:
        """Create the tables, or upgrade them to the newest revision this code knows.

        Returns:
            The revision (:data:`HEAD`).

        Raises:
            SchemaVersionError: the database's revision is newer than, or unknown to, this
                fusiontune; nothing is written then.
            StorageError: the URL cannot be opened or written (one line naming it).
        """
        check_storage(self.url)
        try:
            migrate(self._engine, "head")
        except (DBAPIError, PermissionError) as err:  # e.g. a read-only database
            raise storage_error(self.url, err) from None
        self._checked = True
        return HEAD

    def _ready(self) -> None:
        if not self._checked:
            self.ensure_schema()

    def record_round(self, record: RoundRecord) -> None:
        """Insert a round summary, replacing a stored one of the same study and round."""
        self._ready()
        with self._session() as s:
            s.execute(
                delete(ROUNDS_TABLE).where(
                    (ROUNDS_TABLE.c.study_name == record.study_name)
                    & (ROUNDS_TABLE.c.round == record.round)
                )
            )
            s.execute(insert(ROUNDS_TABLE).values(**_round_values(record)))

    def record_round_once(self, record: RoundRecord) -> bool:
        """Insert a round summary unless one of the same study and round is stored.

        Returns:
            True if this call inserted it (the unique constraint decides between processes).
        """
        self._ready()
        with self._session() as s:
            stmt = (
                insert_ignore(ROUNDS_TABLE, self._engine.dialect.name)
                .values(**_round_values(record))
                .returning(ROUNDS_TABLE.c.id)
            )
            # a row comes back only if inserted (rowcount is -1 for this on psycopg 3)
            return s.execute(stmt).first() is not None

    def rounds(self, study_name: str) -> list[RoundRecord]:
        """Stored round summaries of a study, by round."""
        self._ready()
        t = ROUNDS_TABLE
        with self._session() as s:
            rows = s.execute(
                select(t).where(t.c.study_name == study_name).order_by(t.c.round)
            ).mappings()
            return [
                RoundRecord(
                    study_name=r["study_name"],
                    round=r["round"],
                    n_trials=r["n_trials"],
                    best_value=_float(r["best_value"]),
                    best_low=_float(r["best_low"]),
                    best_high=_float(r["best_high"]),
                    best_trial=-1 if r["best_trial"] is None else r["best_trial"],
                    mean=dict(r["mean"]),
                    sigma=dict(r["sigma"]),
                    created_at=_utc(r["created_at"]),
                )
                for r in rows
            ]

    def record_export(
        self,
        study_name: str,
        trial_number: int | None,
        path: str,
        payload: Mapping[str, Any],
    ) -> ExportRecord:
        """Record that weights of a study were exported to ``path`` (JSON-able payload)."""
        self._ready()
        record = ExportRecord(study_name, trial_number, str(path), dict(payload), _now())
        with self._session() as s:
            s.execute(
                insert(EXPORTS_TABLE).values(
                    study_name=record.study_name,
                    trial_number=record.trial_number,
                    path=record.path,
                    payload=record.payload,
                    created_at=record.created_at,
                )
            )
        return record

    def exports(self, study_name: str) -> list[ExportRecord]:
        """Recorded exports of a study, oldest first."""
        self._ready()
        t = EXPORTS_TABLE
        with self._session() as s:
            rows = s.execute(
                select(t).where(t.c.study_name == study_name).order_by(t.c.id)
            ).mappings()
            return [
                ExportRecord(
                    r["study_name"],
                    r["trial_number"],
                    r["path"],
                    dict(r["payload"]),
                    _utc(r["created_at"]),
                )
                for r in rows
            ]


def _round_values(record: RoundRecord) -> dict[str, Any]:
    return {
        "study_name": record.study_name,
        "round": record.round,
        "n_trials": record.n_trials,
        "best_value": _nullable(record.best_value),
        "best_low": _nullable(record.best_low),
        "best_high": _nullable(record.best_high),
        "best_trial": None if record.best_trial < 0 else record.best_trial,
        "mean": dict(record.mean),
        "sigma": dict(record.sigma),
        "created_at": record.created_at,
    }


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(d: datetime) -> datetime:
    # SQLite drops the time zone; everything is written in UTC
    return d.replace(tzinfo=UTC) if d.tzinfo is None else d.astimezone(UTC)


def _nullable(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _float(x: float | None) -> float:
    return math.nan if x is None else float(x)
