"""Rows of a database, read through the standard library's sqlite3 for a SQLite file and
through SQLAlchemy for any other database.

Importing SQLAlchemy costs ~0.14 s here (its engine, SQL compiler and dialects), a third of
what ``search history`` took; reading a SQLite file needs none of it. :func:`open_rows`
gives both kinds the same two methods, so the SQL of a read is written once, with
``:name`` parameters (sqlite3 and ``sa.text`` both take them).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import sqlalchemy as sa

__all__ = ["Rows", "open_rows", "plain_sqlite_file", "sqlalchemy_rows"]

_PLAIN = "sqlite:///"


class Rows(Protocol):
    """An open connection, for reading."""

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """The rows of a query (``:name`` parameters), as tuples."""
        ...

    def has_table(self, name: str) -> bool:
        """Whether the database has a table of that name."""
        ...


def plain_sqlite_file(url: str) -> Path | None:
    """The file of a plain ``sqlite:///<path>`` URL (no driver, no query, not in memory),
    else None (other URLs go through SQLAlchemy, which parses every form).

    Example:
        >>> plain_sqlite_file("sqlite:////tmp/s.db"), plain_sqlite_file("sqlite:///:memory:")
        (PosixPath('/tmp/s.db'), None)
    """
    if not url.startswith(_PLAIN) or "?" in url:
        return None
    rest = url[len(_PLAIN):]
    return None if rest in ("", ":memory:") else Path(rest)


class _SqliteRows:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql, dict(params or {})).fetchall()

    def has_table(self, name: str) -> bool:
        return bool(self.rows("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :n",
                              {"n": name}))


class _SqlAlchemyRows:
    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        import sqlalchemy as sa

        return [tuple(r) for r in self._conn.execute(sa.text(sql), dict(params or {}))]

    def has_table(self, name: str) -> bool:
        import sqlalchemy as sa

        return sa.inspect(self._conn).has_table(name)


def sqlalchemy_rows(conn: sa.Connection) -> Rows:
    """:class:`Rows` of an open SQLAlchemy connection."""
    return _SqlAlchemyRows(conn)


@contextmanager
def open_rows(url: str) -> Iterator[Rows]:
    """Open the database at ``url`` for reading; a plain SQLite URL through sqlite3 (the
    file must exist: it is opened read-write as SQLAlchemy opens it, but never created).

    Raises:
        sqlite3.Error, sqlalchemy.exc.DBAPIError: the database cannot be read (the CLI
            turns both into one line naming ``--storage``).
    """
    path = plain_sqlite_file(url)
    if path is not None:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True)
        try:
            yield _SqliteRows(conn)
        finally:
            conn.close()
        return
    import sqlalchemy as sa  # here: only a database other than a plain SQLite file needs it

    engine = sa.create_engine(url)
    try:
        with engine.connect() as sa_conn:
            yield _SqlAlchemyRows(sa_conn)
    finally:
        engine.dispose()
