"""Two facts about Optuna's own tables, read with one query each instead of an RDBStorage.

Opening an Optuna :class:`~optuna.storages.RDBStorage` imports alembic and, unless told
not to, loads Optuna's migration scripts to compare the database's revision with their
head: a few tenths of a second that every read-only command paid twice. The study names
need no storage at all, and a database whose revision is already the head the pinned
Optuna expects (:data:`OPTUNA_ALEMBIC_HEAD`) needs no comparison.
"""

from __future__ import annotations

import sqlalchemy as sa

from tuner.storage._trial_writer import OPTUNA_ALEMBIC_HEAD

__all__ = ["optuna_revision_is_current", "optuna_schema_is_current", "optuna_study_names"]


def _column(conn: sa.Connection, table: str, column: str,
            order: str | None = None) -> list[str] | None:
    """The values of one column (None: the table does not exist)."""
    if not sa.inspect(conn).has_table(table):
        return None
    query = f"SELECT {column} FROM {table}" + (f" ORDER BY {order}" if order else "")
    return [str(r[0]) for r in conn.execute(sa.text(query))]


def _scalars(url: str, table: str, column: str, order: str | None = None) -> list[str] | None:
    """:func:`_column` on a connection of its own."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return _column(conn, table, column, order)
    finally:
        engine.dispose()


def optuna_study_names(url: str) -> list[str]:
    """Names of the Optuna studies in the database ([] when it has no Optuna tables)."""
    return _scalars(url, "studies", "study_name", order="study_id") or []


def optuna_schema_is_current(url: str) -> bool:
    """Whether the database's Optuna tables are at :data:`OPTUNA_ALEMBIC_HEAD` (False when
    it has none yet, or another revision: Optuna's own check then runs and names it)."""
    return _scalars(url, "alembic_version", "version_num") == [OPTUNA_ALEMBIC_HEAD]


def optuna_revision_is_current(conn: sa.Connection) -> bool:
    """:func:`optuna_schema_is_current` on an open connection."""
    return _column(conn, "alembic_version", "version_num") == [OPTUNA_ALEMBIC_HEAD]
