"""The one-query reads of Optuna's tables that spare read-only commands an RDBStorage."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import optuna
import pytest

from tuner.storage import optuna_schema_is_current, optuna_study_names


def test_names_and_revision_of_a_current_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    for name in ("b", "a"):
        optuna.create_study(storage=url, study_name=name)
    assert optuna_study_names(url) == optuna.get_all_study_names(url) == ["b", "a"]
    assert optuna_schema_is_current(url)


def test_an_empty_database_has_no_studies_and_no_current_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    sqlite3.connect(tmp_path / "empty.db").close()
    assert optuna_study_names(url) == []
    assert not optuna_schema_is_current(url)


def test_another_revision_is_left_to_optunas_own_check(tmp_path: Path) -> None:
    """A database stamped with another revision is not taken as current, so opening it
    runs Optuna's compatibility check, which refuses it."""
    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    optuna.create_study(storage=url, study_name="s")
    with sqlite3.connect(path) as con:
        con.execute("UPDATE alembic_version SET version_num = 'v9.9.9'")
    assert not optuna_schema_is_current(url)
    with pytest.raises(RuntimeError, match="v9.9.9|schema"):
        optuna.storages.RDBStorage(url, skip_compatibility_check=optuna_schema_is_current(url))


def test_the_columns_read_are_optunas_models_columns() -> None:
    """The columns the reader selects (``select`` refuses any other) are those of Optuna's
    own ORM models: each table exists, its first column is the primary key (the order rows
    are read in), and the columns read as datetimes are datetimes there."""
    import sqlalchemy as sa
    from optuna.storages._rdb import models

    from tuner.storage._optuna_tables import OPTUNA_COLUMNS, select

    tables = models.BaseModel.metadata.tables
    for name, columns in OPTUNA_COLUMNS.items():
        assert name in tables, name
        model = tables[name]
        assert set(columns) <= set(model.columns.keys()), (name, sorted(model.columns.keys()))
        assert [c.name for c in model.primary_key.columns] == [columns[0]], name
    assert isinstance(tables["trials"].c.datetime_start.type, sa.DateTime)
    assert isinstance(tables["trials"].c.datetime_complete.type, sa.DateTime)
    with pytest.raises(KeyError, match="not in OPTUNA_COLUMNS"):
        select("trials", "trial_id", "nope")
