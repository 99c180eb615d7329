"""Optuna's own tables as fusiontune reads them: light SQLAlchemy Core constructs, and two
facts read with one query each instead of an RDBStorage.

Opening an Optuna :class:`~optuna.storages.RDBStorage` imports alembic and, unless told
not to, loads Optuna's migration scripts to compare the database's revision with their
head: a few tenths of a second that every read-only command paid twice. The study names
need no storage at all, and a database whose revision is already the head the pinned
Optuna expects (:data:`OPTUNA_ALEMBIC_HEAD`) needs no comparison.

Optuna's table models (``optuna.storages._rdb.models``) are ORM classes: importing them
imports ``sqlalchemy.orm`` and maps every class, ~0.1 s before the first row. A reader
needs only names, so it selects the columns listed in :data:`OPTUNA_COLUMNS` with plain
SQL (:func:`select`) through :func:`~tuner.storage._rows.open_rows` (a SQLite file without
SQLAlchemy at all); the writer (:mod:`tuner.storage._trial_writer`) checks those names
against the installed Optuna's models, and ``tests/tuner/test_optuna_tables.py`` too.
"""

from __future__ import annotations

from tuner.storage._rows import Rows, open_rows

__all__ = [
    "OPTUNA_ALEMBIC_HEAD",
    "OPTUNA_COLUMNS",
    "OPTUNA_SCHEMA_VERSION",
    "optuna_revision_is_current",
    "optuna_schema_is_current",
    "optuna_study_names",
    "select",
]

OPTUNA_SCHEMA_VERSION = 12
"""``optuna.storages._rdb.models.SCHEMA_VERSION`` the reader and writer were written
against."""
OPTUNA_ALEMBIC_HEAD = "v3.2.0.a"
"""Alembic head of Optuna's RDB schema that goes with it."""

OPTUNA_COLUMNS: dict[str, tuple[str, ...]] = {
    "studies": ("study_id", "study_name"),
    "study_directions": ("study_direction_id", "direction", "study_id", "objective"),
    "study_user_attributes": ("study_user_attribute_id", "study_id", "key", "value_json"),
    "study_system_attributes": ("study_system_attribute_id", "study_id", "key", "value_json"),
    "trials": ("trial_id", "number", "study_id", "state", "datetime_start",
               "datetime_complete"),
    "trial_params": ("param_id", "trial_id", "param_name", "param_value", "distribution_json"),
    "trial_values": ("trial_value_id", "trial_id", "objective", "value", "value_type"),
    "trial_user_attributes": ("trial_user_attribute_id", "trial_id", "key", "value_json"),
    "trial_system_attributes": ("trial_system_attribute_id", "trial_id", "key", "value_json"),
    "trial_intermediate_values": ("trial_intermediate_value_id", "trial_id", "step",
                                  "intermediate_value", "intermediate_value_type"),
}
"""Columns of Optuna's tables (schema version 12) that fusiontune reads or writes; the
first of each is the table's primary key, the order rows are read in."""

def select(table: str, *columns: str) -> str:
    """``SELECT <columns> FROM <table>`` of one of Optuna's tables, each column checked
    against :data:`OPTUNA_COLUMNS` (the names a test checks against Optuna's models).

    Example:
        >>> select("studies", "study_id")
        'SELECT studies.study_id FROM studies'
    """
    unknown = [c for c in columns if c not in OPTUNA_COLUMNS[table]]
    if unknown:
        raise KeyError(f"columns {unknown} are not in OPTUNA_COLUMNS[{table!r}]")
    return f"SELECT {', '.join(f'{table}.{c}' for c in columns)} FROM {table}"


def _column(rows: Rows, table: str, column: str,
            order: str | None = None) -> list[str] | None:
    """The values of one column (None: the table does not exist)."""
    if not rows.has_table(table):
        return None
    query = f"SELECT {column} FROM {table}" + (f" ORDER BY {order}" if order else "")
    return [str(r[0]) for r in rows.rows(query)]


def _scalars(url: str, table: str, column: str, order: str | None = None) -> list[str] | None:
    """:func:`_column` on a connection of its own."""
    with open_rows(url) as rows:
        return _column(rows, table, column, order)


def optuna_study_names(url: str) -> list[str]:
    """Names of the Optuna studies in the database ([] when it has no Optuna tables)."""
    return _scalars(url, "studies", "study_name", order="study_id") or []


def optuna_schema_is_current(url: str) -> bool:
    """Whether the database's Optuna tables are at :data:`OPTUNA_ALEMBIC_HEAD` (False when
    it has none yet, or another revision: Optuna's own check then runs and names it)."""
    return _scalars(url, "alembic_version", "version_num") == [OPTUNA_ALEMBIC_HEAD]


def optuna_revision_is_current(rows: Rows) -> bool:
    """:func:`optuna_schema_is_current` on an open connection."""
    return _column(rows, "alembic_version", "version_num") == [OPTUNA_ALEMBIC_HEAD]
