"""SmoothCEM's noise-aware spread and the split-sample validated pick.

The strategy contract (ask/tell, replay, resume, workers) runs over SmoothCEM with every
registered strategy in ``test_strategies.py`` and ``test_strategy_contract.py``; here are
what only it promises: a spread that does not shrink while its elites cannot be told
apart, and one that does when they can. The validated pick is checked on a marketplace
log: folds are disjoint halves, control is the export when nothing beats it, and the
reported lift is the plain paired lift on the report fold.
"""

from __future__ import annotations

import numpy as np
import pytest

from simulator.estimators import SNIPS
from simulator.replay import OBJECTIVE
from simulator.report import ab_report
from tests.worldkit import OBJECTIVE_WEIGHTS, SPACE, make_log
from tuner.picks.validated import fold_rows, validated_pick
from tuner.strategies import SmoothCEM, SmoothCEMConfig


def test_spread_keeps_its_width_on_pure_noise() -> None:
    cem = SmoothCEM(SPACE, SmoothCEMConfig(population=16), seed=0)
    rng = np.random.default_rng(1)
    widths = [cem.spread().copy()]
    for g in range(8):
        X = cem.ask(g)
        cem.tell(g, X, rng.standard_normal(len(X)))  # no signal: elites are noise
        widths.append(cem.spread().copy())
        assert not cem.distinguishable
    assert all((b >= a - 1e-12).all() for a, b in zip(widths, widths[1:], strict=False))


def test_spread_shrinks_when_the_slope_is_clear() -> None:
    cem = SmoothCEM(SPACE, SmoothCEMConfig(population=16), seed=0)
    start = cem.spread()
    for g in range(6):
        X = cem.ask(g)
        cem.tell(g, X, -((X - 1.0) ** 2).sum(axis=1))  # exact, no noise
    assert cem.distinguishable or (cem.spread() < start).all()
    assert np.abs(cem.pick() - 1.0).max() < 0.5


@pytest.mark.parametrize(("field", "value", "pattern"), [
    ("bandwidth", 0.0, "bandwidth"), ("z", -1.0, "z is"), ("ridge", float("nan"), "ridge"),
    ("elite_fraction", 0.0, "elite_fraction"), ("init_sigma", 0.01, "init_sigma"),
])
def test_config_refuses(field: str, value: float, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        SmoothCEMConfig(**{field: value})


def test_folds_are_disjoint_halves() -> None:
    a, b = fold_rows(11)
    assert len(a) + len(b) == 11 and not set(a) & set(b)


@pytest.fixture(scope="module")
def holdout():  # type: ignore[no-untyped-def]
    log = make_log(3, 4000)
    return log, log.replay(SNIPS())


def test_control_is_exported_when_nothing_beats_it(holdout) -> None:  # type: ignore[no-untyped-def]
    _, replay = holdout
    control = np.array([1.0, 1.0, 1.0])
    pick = validated_pick(replay, control[None], control, OBJECTIVE_WEIGHTS)
    assert not pick.beats_control
    assert pick.lift.value == 0.0
    np.testing.assert_array_equal(pick.weights, control)


def test_reported_lift_is_the_report_folds_paired_lift(holdout) -> None:  # type: ignore[no-untyped-def]
    log, replay = holdout
    control = np.array([1.0, 1.0, 1.0])
    cands = SPACE.matrix_to_weights(np.array([[0.2, 0.2], [2.0, 1.0], [3.0, 3.0]]))
    pick = validated_pick(replay, cands, control, OBJECTIVE_WEIGHTS)
    assert pick.candidate == int(np.argmax(pick.choose_lifts))
    _, report = fold_rows(replay.feedback.n_requests)
    part = log.part(log.traffic.take(report))
    row = ab_report(part.replay(SNIPS()), control, cands[pick.candidate],
                    OBJECTIVE_WEIGHTS).row(OBJECTIVE)
    assert pick.lift.value == pytest.approx(row.lift.value, rel=1e-6, abs=1e-9)
    assert pick.lift.low == pytest.approx(row.lift.low, rel=1e-3, abs=1e-6)
    assert pick.beats_control == (row.lift.low > 0)
