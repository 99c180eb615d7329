"""Alembic revisions of fusiontune's own tables: upgrade from 0001 and from the pre-alembic
layout keeps the data, every revision downgrades, an unknown revision is refused (also by
the CLI, with exit code 1)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from tuner.cli import main
from tuner.space import FusionSpace
from tuner.storage import (
    HEAD,
    ProjectStore,
    RoundRecord,
    SchemaVersionError,
    current_revision,
    migrate,
)
from tuner.strategies import CEMConfig
from tuner.study import create_or_load_study

NEWER = (
    rf"database schema revision 0099 is newer than this fusiontune knows \(head {HEAD}\); "
    "upgrade fusiontune"
)


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as con:
        rows = con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {r[0] for r in rows}


def _at_0001(path: Path) -> None:
    """A database as revision 0001 left it, with one round summary in it."""
    engine = sa.create_engine(f"sqlite:///{path}")
    assert migrate(engine, "0001") == "0001"
    engine.dispose()
    with sqlite3.connect(path) as con:
        con.execute(
            "INSERT INTO fusiontune_rounds (study_name, round, n_trials, best_value, mean, "
            "sigma, created_at) VALUES ('s', 0, 8, 1.5, '{\"a\": 1.0}', '{\"a\": 0.3}', "
            "'2026-01-01 00:00:00')"
        )


def _revision(path: Path) -> str | None:
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        rev = current_revision(conn)
    engine.dispose()
    return rev


@pytest.mark.parametrize("legacy", [False, True], ids=["at-0001", "pre-alembic"])
def test_old_database_is_upgraded_and_keeps_its_rows(tmp_path: Path, legacy: bool) -> None:
    path = tmp_path / "old.db"
    _at_0001(path)
    assert "fusiontune_schema" in _tables(path)
    if legacy:  # what fusiontune wrote before alembic: fusiontune_schema alone says 1
        with sqlite3.connect(path) as con:
            con.execute("DROP TABLE fusiontune_alembic_version")
        assert _revision(path) is None
    with ProjectStore(f"sqlite:///{path}") as store:
        assert store.ensure_schema() == HEAD
        (old,) = store.rounds("s")
        assert (old.round, old.n_trials, old.best_value, old.mean) == (0, 8, 1.5, {"a": 1.0})
        record = RoundRecord("s", 1, 8, 2.0, 1.0, 3.0, 9, {"a": 1.1}, {"a": 0.2},
                             datetime.now(UTC))
        assert store.record_round_once(record)
        assert not store.record_round_once(record)  # the unique constraint decides
        assert [r.round for r in store.rounds("s")] == [0, 1]
    assert _revision(path) == HEAD
    # one record of the revision: alembic's table; the old version table is gone
    assert "fusiontune_schema" not in _tables(path)
    assert "fusiontune_claims" in _tables(path)


def test_every_revision_downgrades(tmp_path: Path) -> None:
    path = tmp_path / "down.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    assert migrate(engine, "head") == HEAD
    assert migrate(engine, "0001", downgrade=True) == "0001"
    assert {"fusiontune_schema", "fusiontune_rounds"} <= _tables(path)
    assert "fusiontune_claims" not in _tables(path)
    with sqlite3.connect(path) as con:
        assert con.execute("SELECT version FROM fusiontune_schema").fetchall() == [(1,)]
    assert migrate(engine, "base", downgrade=True) == ""
    assert not {t for t in _tables(path) if t != "fusiontune_alembic_version"}
    assert migrate(engine, "head") == HEAD
    engine.dispose()


def _newer_db(tmp_path: Path) -> Path:
    """A database with a study whose fusiontune tables are at an unknown revision."""
    path = tmp_path / "newer.db"
    space = FusionSpace(("click", "like"), pinned="click")
    create_or_load_study(f"sqlite:///{path}", "s", space, CEMConfig(population=4), seed=0)
    with sqlite3.connect(path) as con:
        con.execute("UPDATE fusiontune_alembic_version SET version_num = '0099'")
    return path


def test_unknown_newer_revision_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = _newer_db(tmp_path)
    before = _tables(path)
    with pytest.raises(SchemaVersionError, match=NEWER):
        ProjectStore(f"sqlite:///{path}").ensure_schema()
    assert _tables(path) == before and _revision(path) == "0099"


def test_pre_alembic_database_of_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "legacy7.db"
    _at_0001(path)
    with sqlite3.connect(path) as con:
        con.execute("DROP TABLE fusiontune_alembic_version")
        con.execute("UPDATE fusiontune_schema SET version = 7")
    with pytest.raises(SchemaVersionError, match="revision 7 is newer than this fusiontune"):
        ProjectStore(f"sqlite:///{path}").ensure_schema()


@pytest.mark.parametrize("command", [
    ["search", "history", "--study", "s"],
    ["search", "run", "--study", "s"],
])
def test_cli_exits_1_with_the_message(tmp_path: Path, command: list[str]) -> None:
    path = _newer_db(tmp_path)
    result = CliRunner().invoke(main, [*command, "--storage", str(path)])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: database schema revision 0099")
    assert "upgrade fusiontune" in lines[0]


def test_head_is_the_head_of_the_shipped_revisions() -> None:
    """HEAD is a constant (so opening a database needs no alembic); it must follow the
    migration scripts."""
    from tuner.storage._migrate import script_head

    assert script_head() == HEAD


def test_a_database_at_head_is_opened_without_alembic(tmp_path: Path) -> None:
    """Read-only commands open a current database with one query; alembic is for changes."""
    import subprocess
    import sys

    path = tmp_path / "s.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()
    code = ("import sys, sqlalchemy as sa\nfrom tuner.storage import migrate\n"
            f"print(migrate(sa.create_engine('sqlite:///{path}')), 'alembic' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [HEAD, "False"]
