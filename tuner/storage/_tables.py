"""fusiontune's own tables, beside Optuna's in the same database.

Optuna has no place for CEM round summaries or exported weight vectors; they live here. All
table definitions are in this module (alembic revisions will build on ``METADATA``); ORM
rows never leave :class:`ProjectStore`, callers get frozen records.
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
from sqlalchemy.orm import Session

__all__ = ["SCHEMA_VERSION", "ExportRecord", "ProjectStore", "RoundRecord", "SchemaVersionError"]

SCHEMA_VERSION = 1
"""Version of the tables below that this fusiontune reads and writes."""

METADATA = MetaData()

SCHEMA_TABLE = Table(
    "fusiontune_schema",
    METADATA,
    Column("version", Integer, primary_key=True, autoincrement=False),
)

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


class SchemaVersionError(RuntimeError):
    """The database holds fusiontune tables of a version this code does not know."""


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
        1
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

    def ensure_schema(self) -> int:
        """Create the tables at version 1, or check the stored version.

        Returns:
            The schema version (1).

        Raises:
            SchemaVersionError: the database's version is newer than, or unknown to, this
                fusiontune; nothing is written then.
        """
        SCHEMA_TABLE.create(self._engine, checkfirst=True)
        with self._session() as s:
            versions = list(s.execute(select(SCHEMA_TABLE.c.version)).scalars())
            if len(versions) > 1:
                raise SchemaVersionError(
                    f"table fusiontune_schema in {self.url} has {len(versions)} rows "
                    f"{versions}; it must have one"
                )
            if versions and versions[0] > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"database schema version {versions[0]} is newer than this fusiontune "
                    f"(knows {SCHEMA_VERSION}); upgrade fusiontune"
                )
            if versions and versions[0] != SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"database schema version {versions[0]} is unknown to this fusiontune "
                    f"(knows {SCHEMA_VERSION})"
                )
            METADATA.create_all(s.connection(), checkfirst=True)
            if not versions:
                s.execute(insert(SCHEMA_TABLE).values(version=SCHEMA_VERSION))
        self._checked = True
        return SCHEMA_VERSION

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
            s.execute(
                insert(ROUNDS_TABLE).values(
                    study_name=record.study_name,
                    round=record.round,
                    n_trials=record.n_trials,
                    best_value=_nullable(record.best_value),
                    best_low=_nullable(record.best_low),
                    best_high=_nullable(record.best_high),
                    best_trial=None if record.best_trial < 0 else record.best_trial,
                    mean=dict(record.mean),
                    sigma=dict(record.sigma),
                    created_at=record.created_at,
                )
            )

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


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(d: datetime) -> datetime:
    # SQLite drops the time zone; everything is written in UTC
    return d.replace(tzinfo=UTC) if d.tzinfo is None else d.astimezone(UTC)


def _nullable(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _float(x: float | None) -> float:
    return math.nan if x is None else float(x)
