"""Alembic migrations of fusiontune's own tables, run programmatically (no alembic.ini).

The revisions live in ``tuner/storage/migrations/versions`` and ship with the package. The
one record of a database's revision is alembic's version table
``fusiontune_alembic_version`` (revision 0002 dropped the older ``fusiontune_schema``
table, whose single row said ``1``; such a database is stamped 0001 and upgraded).

Alembic itself is imported only when a database must be stamped, upgraded or downgraded:
opening a database already at :data:`HEAD` (every read-only command) reads the version
table with one query, so that ``fusiontune search history`` starts fast.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from tuner.storage._rows import Rows, sqlalchemy_rows

if TYPE_CHECKING:
    import sqlalchemy as sa
    from alembic.config import Config
    from alembic.script import ScriptDirectory

__all__ = ["HEAD", "VERSION_TABLE", "SchemaVersionError", "current_revision", "migrate"]

VERSION_TABLE = "fusiontune_alembic_version"
MIGRATIONS = Path(__file__).with_name("migrations")
LEGACY_TABLE = "fusiontune_schema"
# key of the PostgreSQL advisory lock that serialises concurrent upgrades
_PG_LOCK = 0x66757369_6F6E


class SchemaVersionError(RuntimeError):
    """The database holds fusiontune tables of a revision this code does not know."""


@functools.cache
def _config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


@functools.cache
def _script() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config())


def script_head() -> str:
    """The head revision of the shipped migration scripts (imports alembic)."""
    head = _script().get_current_head()
    assert head is not None
    return head


HEAD = "0002"
"""The newest revision this fusiontune knows: the head of ``migrations/versions`` (a test
checks that it is :func:`script_head`; a new revision must raise it)."""


def current_revision(conn: sa.Connection) -> str | None:
    """Revision recorded in the database (None: no fusiontune tables, or pre-alembic).

    One query on alembic's version table, without importing alembic.
    """
    return stored_revision(sqlalchemy_rows(conn))


def stored_revision(rows: Rows) -> str | None:
    """:func:`current_revision` of a connection opened by :func:`~tuner.storage._rows.open_rows`
    (a SQLite file read without SQLAlchemy)."""
    if not rows.has_table(VERSION_TABLE):
        return None
    found = [r[0] for r in rows.rows(f"SELECT version_num FROM {VERSION_TABLE}")]
    if len(found) > 1:
        raise _newer(", ".join(sorted(found)))  # branched heads: no revision of ours
    return found[0] if found else None


def _newer(rev: object) -> SchemaVersionError:
    return SchemaVersionError(
        f"database schema revision {rev} is newer than this fusiontune knows (head {HEAD}); "
        "upgrade fusiontune"
    )


def _known(rev: str) -> bool:
    try:
        return _script().get_revision(rev) is not None
    except Exception:  # alembic raises several kinds for an unknown id
        return False


def migrate(engine: sa.Engine, target: str = "head", downgrade: bool = False) -> str:
    """Bring the database to ``target`` (upgrade, or downgrade with ``downgrade=True``).

    A pre-alembic database (table ``fusiontune_schema`` with version 1) is stamped 0001
    first. On PostgreSQL an advisory lock serialises processes that migrate at once.

    Returns:
        The revision the database is at afterwards (``"base"``-less: None maps to ``""``).

    Raises:
        SchemaVersionError: the database's revision is unknown to (newer than) this code;
            nothing is written then.
    """
    import sqlalchemy as sa  # here: reading a revision (search history) needs no SQLAlchemy

    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})
        current = current_revision(conn)
        wanted = HEAD if target == "head" else target
        if current == wanted:
            return current
        from alembic import command

        cfg = _config()
        cfg.attributes["connection"] = conn
        try:
            if current is None and sa.inspect(conn).has_table(LEGACY_TABLE):
                legacy = list(conn.execute(sa.text(f"SELECT version FROM {LEGACY_TABLE}")))
                if [tuple(r) for r in legacy] != [(1,)]:
                    raise _newer(", ".join(str(r[0]) for r in legacy) or "(empty)")
                command.stamp(cfg, "0001")
                current = "0001"
            if current is not None and not _known(current):
                raise _newer(current)
            if current == wanted:
                return current
            if downgrade:
                command.downgrade(cfg, target)
            else:
                command.upgrade(cfg, target)
            return current_revision(conn) or ""
        finally:
            cfg.attributes.pop("connection", None)
