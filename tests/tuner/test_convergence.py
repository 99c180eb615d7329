"""The convergence rule over round summaries, and ``search run --until converged``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.tuner.test_cli import invoke
from tuner.study import ConvergenceRule, RoundSummary, history, load_search

if TYPE_CHECKING:
    from tests.tuner.conftest import DemoFiles


def rounds(values: list[float], half: float = 0.1) -> list[RoundSummary]:
    return [RoundSummary(g, 8, v, v - half, v + half, g, {"like": 1.0}, {"like": 0.1})
            for g, v in enumerate(values)]


@pytest.mark.parametrize(("values", "patience", "stop_round", "reference"), [
    ([1.0, 1.5, 1.55, 1.52, 1.58], 3, 4, 1),     # plateau after round 1
    ([1.0, 1.5, 1.55, 1.52], 3, None, None),     # not yet 3 quiet rounds
    ([1.0, 1.2, 1.4, 1.6, 1.8], 2, None, None),  # each round beats the last beyond noise
    ([1.0, 1.05, 1.1, 1.15, 1.2], 3, None, None),  # creeping: beats the reference at round 3
    ([1.0, math.nan, 1.02], 2, 2, 0),            # a failed round counts as not improving
    ([math.nan, 1.0, 1.0], 1, 2, 1),             # no reference before the first finite one
])
def test_rule(values: list[float], patience: int, stop_round: int | None,
              reference: int | None) -> None:
    stop = ConvergenceRule(patience).stop(rounds(values))
    if stop_round is None:
        assert stop is None
    else:
        assert stop is not None
        assert (stop.round, stop.reference) == (stop_round, reference)
        assert stop.half_width == pytest.approx(0.1)
        assert f"last {patience}" in stop.reason()


def test_rule_refuses_a_patience_below_one() -> None:
    with pytest.raises(ValueError, match="patience is 0"):
        ConvergenceRule(0)


def test_until_converged_stops_before_the_cap_and_says_why(demo_files: DemoFiles,
                                                            tmp_path: Path) -> None:
    """A tiny search plateaus at once: --until converged --patience 1 stops long before
    --rounds 30, says why on stderr, and search history marks the same round."""
    db = tmp_path / "s.db"
    args = demo_files.new_study_args(db, rounds=30)
    result = invoke([*args, "--until", "converged", "--patience", "1"])
    assert result.exit_code == 0, result.output
    study, search = load_search(f"sqlite:///{db}", "s")
    hist = history(study, search)
    stop = ConvergenceRule(1).stop(hist)
    assert stop is not None and len(hist) == stop.round + 1 < 30
    assert f"converged after round {stop.round}: no round in the last 1" in result.stderr
    shown = invoke(["search", "history", "--storage", str(db), "--study", "s",
                    "--patience", "1"])
    assert f"would stop after round {stop.round}:" in shown.output
