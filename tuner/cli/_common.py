"""What the commands share: one-line user errors, storage URLs, opening a study, JSON.

Every ``search`` command imports this module, ``search history`` included, so it imports
nothing a reader does not need (the options of a new study, whose choices import the
simulator's estimators, are :mod:`tuner.cli._study_options`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click
import optuna

from tuner.storage import (
    SchemaVersionError,
    StorageError,
    check_storage,
    optuna_study_names,
    sqlite_file,
    storage_error,
)
from tuner.study import SearchSpec, jsonable, load_search, read_search

F = TypeVar("F", bound=Callable[..., Any])

USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError, FileNotFoundError, KeyError, SchemaVersionError, StorageError,
    IsADirectoryError,
)


def _database_errors() -> tuple[type[BaseException], ...]:
    """Errors of the database drivers in use: sqlite3's (a SQLite file is read without
    SQLAlchemy, see :mod:`tuner.storage._rows`) and SQLAlchemy's ``DBAPIError`` once
    SQLAlchemy is imported (not before: none of its errors can be raised then, and
    ``search history`` on a SQLite file never imports it)."""
    sa = sys.modules.get("sqlalchemy")
    return (sqlite3.Error, *((sa.exc.DBAPIError,) if sa is not None else ()))


def _caught() -> tuple[type[BaseException], ...]:
    return (*USER_ERRORS, OSError, *_database_errors())


def user_errors(fn: F) -> F:
    """Turn a user mistake into a one-line message and exit code 1 (no traceback).

    Besides :data:`USER_ERRORS`, a database error (SQLAlchemy's ``DBAPIError``: a file that
    is not a database, a read-only one, a server gone) names the command's ``--storage``,
    and an ``OSError`` (a directory that cannot be made or written) names its path.
    Optuna's log level follows the root's ``--verbose`` (set here, where Optuna is
    imported anyway, so that the root group itself imports click only).
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context(silent=True)
        verbose = bool(ctx and ctx.find_root().params.get("verbose"))
        optuna.logging.set_verbosity(logging.INFO if verbose else logging.WARNING)
        try:
            return fn(*args, **kwargs)
        except _caught() as err:  # evaluated when raised: SQLAlchemy may be imported by then
            raise click.ClickException(_one_line(err, kwargs.get("storage"))) from None
        except KeyboardInterrupt:
            click.echo("interrupted; completed trials are saved, run again to resume",
                       err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def _one_line(err: BaseException, storage: object) -> str:
    """The first line of a user error; an OS error as ``path: reason``, a database error
    with the command's ``--storage``."""
    if isinstance(err, _database_errors()):
        return str(storage_error(storage_url(str(storage or "the database")), err))
    if isinstance(err, OSError) and err.filename:
        return f"{err.filename}: {err.strerror}"
    msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    return (str(msg) or type(err).__name__).splitlines()[0]


def storage_url(value: str) -> str:
    """A SQLAlchemy URL; a bare file path means a SQLite file."""
    return value if "://" in value else f"sqlite:///{Path(value).resolve()}"


def dump(data: Any) -> None:
    """Print ``data`` as JSON on stdout (everything else a command says goes to stderr)."""
    click.echo(json.dumps(jsonable(data), indent=2, allow_nan=False))


def dump_line(data: Any) -> None:
    """Print ``data`` as one line of JSON on stdout, flushed (a JSON Lines stream)."""
    click.echo(json.dumps(jsonable(data), allow_nan=False))
    sys.stdout.flush()


@contextlib.contextmanager
def stage(what: str, enabled: bool = True) -> Iterator[None]:
    """Say on stderr what a long step does, and when it is done how long it took.

    The line before the step is for a person at a terminal; in a log the line after it
    says both (and a step that fails leaves only its one-line error).

    Example:
        >>> with stage("reading logs.parquet", enabled=False):
        ...     pass
    """
    if not enabled:
        yield
        return
    if sys.stderr.isatty():
        click.echo(f"{what}...", err=True)
    tick = time.perf_counter()
    yield
    click.echo(f"{what}: done in {time.perf_counter() - tick:.1f} s", err=True)


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for other databases and in-memory SQLite)."""
    return sqlite_file(url)


def study_names(url: str) -> list[str]:
    """Studies in the database; a SQLite file that does not exist is not created.

    Raises:
        StorageError: the URL cannot be a study database (one line naming it).
    """
    check_storage(url, create=False)
    path = sqlite_path(url)
    if path is not None and not path.exists():
        return []
    return optuna_study_names(url)  # one query: no Optuna storage is opened for it


def load_existing(url: str, study_name: str,
                  read_only: bool = False) -> tuple[optuna.Study, SearchSpec]:
    """:func:`load_search` of a study that must exist; never creates a database.

    ``read_only``: a snapshot of the study (:func:`tuner.study.read_search`: no Optuna
    storage is opened, nothing can be written), for commands that only read it.
    """
    path = sqlite_path(url)
    if path is not None and not path.exists():  # a directory: study_names says so
        raise FileNotFoundError(f"no database file {path}; --storage must name the SQLite "
                                "file (or URL) that 'fusiontune search run' wrote")
    names = study_names(url)
    if study_name not in names:
        raise ValueError(f"study {study_name!r} does not exist in {url}; studies: "
                         f"{', '.join(sorted(names)) or 'none'}")
    return read_search(url, study_name) if read_only else load_search(url, study_name)


STORAGE = click.option("--storage", default="fusiontune.db", show_default=True,
                       help="Database URL (sqlite:///f.db, postgresql://...) or a SQLite file.")
STUDY = click.option("--study", "study_name", required=True, help="Study name.")
