"""Fixtures of the CLI tests: one small demo run, shared by the whole session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner

from tuner.cli import main

OBJECTIVE = "click=1,conversion=10,like=5"


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
