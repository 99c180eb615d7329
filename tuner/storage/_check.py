"""One-line errors for a storage URL that cannot hold a study, found before anything is written.

A missing directory, a path under a file, a file that is not a SQLite database, a database
that cannot be written, a server that does not answer: SQLAlchemy reports each as a
``OperationalError`` or ``DatabaseError`` whose text is a page of SQL and links.
:func:`check_storage` opens the database once, early, and raises a :class:`StorageError`
that names the URL (and the file) and what is wrong; :func:`storage_error` translates such an
exception raised later (a read-only database found on the first write).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from tuner.storage._rows import open_rows, plain_sqlite_file

__all__ = ["StorageError", "check_storage", "sqlite_file", "storage_error"]

_SQLITE_HEADER = b"SQLite format 3\x00"


class StorageError(ValueError):
    """The storage URL cannot be opened or written as a study database (one line)."""


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for other databases and in-memory SQLite)."""
    plain = plain_sqlite_file(url)
    if plain is not None:
        return plain
    import sqlalchemy as sa  # here: a plain sqlite:/// URL (search history) needs no SQLAlchemy

    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    if str(parsed.query.get("uri", "")).lower() in ("true", "1"):
        return None  # a sqlite3 URI ("file:...?mode=ro"), not a path
    return Path(parsed.database)


def _path_problem(path: Path, create: bool) -> str | None:
    """What keeps ``path`` from being (made into) a SQLite database, or None."""
    if path.is_dir():
        return f"{path} is a directory, not a SQLite file"
    if path.exists():
        try:
            with path.open("rb") as f:
                head = f.read(len(_SQLITE_HEADER))
        except OSError as err:
            return f"cannot read {path}: {err.strerror}"
        if head and head != _SQLITE_HEADER:
            return f"{path} is not a SQLite database"
        return None
    parent = path.parent
    for above in (parent, *parent.parents):  # the nearest existing ancestor says why
        if above.exists():
            if not above.is_dir():
                return f"{above} is a file, not a directory, so {path} cannot be created"
            break
    if not parent.exists():
        return f"directory {parent} does not exist"
    if create and not os.access(parent, os.W_OK):
        return f"directory {parent} is not writable"
    return None


def storage_error(url: str, err: BaseException) -> StorageError:
    """A one-line :class:`StorageError` for ``err`` raised while using storage ``url``."""
    orig = getattr(err, "orig", None)
    text = str(orig if orig is not None else err).strip()
    reason = text.splitlines()[0] if text else type(err).__name__
    path = sqlite_file(url)
    if path is not None:
        if "unable to open database file" in reason:
            problem = _path_problem(path, create=True)
            reason = problem or f"cannot open or create {path} (is its directory writable?)"
        elif "readonly database" in reason or "read-only" in reason:
            reason = f"{path} (or its directory) is read-only: {reason}"
        elif "file is not a database" in reason:
            reason = f"{path} is not a SQLite database"
    elif isinstance(err, PermissionError) and err.filename:
        reason = f"{err.filename}: {err.strerror}"
    return StorageError(f"storage {url}: {reason}")


def check_storage(url: str, create: bool = True) -> None:
    """Open the database at ``url`` once and raise :class:`StorageError` if it is unusable.

    A SQLite file is checked first by path (its directory exists, and is writable when the
    file is to be ``create``-d; an existing file starts with SQLite's header), then opened
    and its schema read. Other databases are connected to.

    Args:
        url: a SQLAlchemy URL.
        create: whether a missing SQLite file may be created (else a missing file is left to
            the caller, which may say "no database file").

    Raises:
        StorageError: one line naming ``url`` and what is wrong with it.

    Example:
        >>> check_storage("sqlite:///no/s.db")
        Traceback (most recent call last):
        ...
        tuner.storage._check.StorageError: storage sqlite:///no/s.db: directory no does not exist
    """
    if not create and plain_sqlite_file(url) is not None:
        _check_sqlite_file(url)
        return
    import sqlalchemy as sa  # here, as in sqlite_file

    try:
        engine = sa.create_engine(url)
    except sa.exc.ArgumentError as err:
        raise StorageError(f"storage {url!r} is not a database URL: {err}") from None
    path = sqlite_file(url)
    try:
        if path is not None:
            problem = _path_problem(path, create)
            if problem is not None:
                raise StorageError(f"storage {url}: {problem}")
            if not create and not path.exists():
                return
        with engine.connect() as conn:
            # reading the schema reads the file's header: a non-database fails here
            sqlite = engine.dialect.name == "sqlite"
            conn.execute(sa.text("PRAGMA schema_version" if sqlite else "SELECT 1"))
    except (sa.exc.DBAPIError, PermissionError) as err:
        raise storage_error(url, err) from None
    finally:
        engine.dispose()


def _check_sqlite_file(url: str) -> None:
    """:func:`check_storage` of an existing plain SQLite file, through sqlite3."""
    path = plain_sqlite_file(url)
    assert path is not None
    problem = _path_problem(path, create=False)
    if problem is not None:
        raise StorageError(f"storage {url}: {problem}")
    if not path.exists():
        return
    try:
        with open_rows(url) as rows:
            rows.rows("PRAGMA schema_version")  # reads the header: a non-database fails here
    except (sqlite3.Error, PermissionError) as err:
        raise storage_error(url, err) from None
