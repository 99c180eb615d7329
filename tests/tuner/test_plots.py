"""search history --plot writes the per-round pictures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.tuner.conftest import DemoFiles
from tuner.cli import main
from tuner.plots import PickEstimates, plot_history
from tuner.space import FusionSpace
from tuner.study import RoundSummary, TrialResult

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


def _figures(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Figures plot_history closes, kept to be inspected."""
    import matplotlib.pyplot as plt

    kept: list[Any] = []
    monkeypatch.setattr(plt, "close", lambda fig=None: kept.append(fig))
    return kept


def test_history_plot_shows_the_pick_control_and_holdout_legend_outside(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Beside the best of round: the pick with its interval (search and held-out) and the
    control; each legend lies right of its axes; the weights band stays in the box and the
    pinned weight is drawn."""
    space = FusionSpace(("click", "like"), pinned="click", low=0.0, high=4.0)
    rounds = [RoundSummary(g, 8, 1.0 + g / 10, 0.9 + g / 10, 1.1 + g / 10, g,
                           {"like": 3.5}, {"like": 1.0}) for g in range(3)]
    est = [TrialResult(1.0, 0.95, 1.05, 100.0) for _ in rounds]
    picks = PickEstimates(est, TrialResult(0.8, 0.75, 0.85, 100.0), est)
    kept = _figures(monkeypatch)
    plot_history(rounds, tmp_path, "t", space=space, picks=picks)
    objective, weights = kept
    for fig in kept:
        fig.canvas.draw()
        ax = fig.axes[0]
        legend = ax.get_legend().get_window_extent()
        assert legend.x0 >= ax.get_window_extent().x1  # outside, right of the axes
    labels = [t.get_text() for t in objective.axes[0].get_legend().get_texts()]
    assert any("pick" in s and "search" in s for s in labels)
    assert any("pick" in s and "held-out" in s for s in labels)
    assert any(s.startswith("control") for s in labels)
    ax = weights.axes[0]
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.max() <= 4.0 + 1e-9  # 3.5 + 1.0 clipped at the box
    assert any("pinned" in t.get_text() for t in ax.get_legend().get_texts())
