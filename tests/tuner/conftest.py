"""Fixtures of the CLI tests: one small demo run, shared by the whole session."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from tuner.cli import main

OBJECTIVE = "click=1,conversion=10,like=5"
PG_ADMIN_URL = os.environ.get(
    "FUSIONTUNE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@dataclass(frozen=True)
class DemoFiles:
    """Paths written by one ``fusiontune demo`` run (read-only for the tests)."""

    out: Path
    logs: Path
    scores: Path

    def new_study_args(self, storage: Path, study: str = "s", *, rounds: int = 2,
                       population: int = 8) -> list[str]:
        """Arguments of ``search run`` creating ``study`` in ``storage`` from these files."""
        return ["search", "run", "--storage", str(storage), "--study", study,
                "--logs", str(self.logs), "--scores", str(self.scores),
                "--objective", OBJECTIVE, "--rounds", str(rounds),
                "--population", str(population), "--no-progress"]


@pytest.fixture(scope="session")
def demo_files(tmp_path_factory: pytest.TempPathFactory) -> DemoFiles:
    """A tiny demo (2,000 requests, 1 epoch, 1 round of 4) for its logs and score table."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = tmp_path_factory.mktemp("demo")
    result = CliRunner().invoke(
        main, ["demo", "--out", str(out), "--requests", "2000", "--rounds", "1",
               "--population", "4", "--epochs", "1", "--no-progress", "--json"],
        catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return DemoFiles(out, out / "logs.parquet", out / "scores.parquet")


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """URL of a fresh PostgreSQL database, dropped after the module's tests.

    Skipped where no server answers, except with ``CI=true``, where it fails.
    """
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as err:  # any failure to reach the server
        admin.dispose()
        reason = f"PostgreSQL unreachable at {PG_ADMIN_URL}: {str(err).splitlines()[0]}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true needs it; .ci/run starts the local cluster)")
        pytest.skip(reason)
    name = f"fusiontune_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
