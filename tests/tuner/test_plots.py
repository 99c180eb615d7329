"""search history --plot writes the per-round pictures."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from tests.tuner.conftest import DemoFiles
from tuner.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


def test_history_plot_writes_two_pngs(demo_files: DemoFiles, tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    run = CliRunner().invoke(main, demo_files.new_study_args(db, rounds=2, population=8),
                             catch_exceptions=False)
    assert run.exit_code == 0, run.output
    out = tmp_path / "plots"
    result = CliRunner().invoke(main, ["search", "history", "--storage", str(db), "--study", "s",
                                       "--plot", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for name in ("objective.png", "weights.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 5000, name
