"""The ask/tell contract, run over every registered strategy, and steady-state CEM's archive.

Every strategy in ``tuner.strategies.STRATEGIES`` must: propose ``[M, dim]`` points inside
the box, repeat the same asks for the same seed (and differ for another), refuse
out-of-order or misshapen tells, survive failed (NaN) evaluations, rebuild itself from a
stored history, and climb a toy concave objective to a ``pick()`` near its optimum.
"""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import optuna
import pytest

from tuner.space import FusionSpace
from tuner.strategies import (
    CEM,
    STRATEGIES,
    BaseStrategy,
    CEMConfig,
    OptunaStrategy,
    SteadyCEM,
    SteadyCEMConfig,
)

SPACE = FusionSpace(("click", "like", "follow"), pinned="click", low=0.0, high=4.0)
TARGET = np.array([2.5, 0.7])  # optimum of the toy objective, inside the box
POPULATION = 16


def toy(X: np.ndarray) -> np.ndarray:
    """Concave: ``-|x - TARGET|^2`` per row of ``X [M, 2]``, maximum 0."""
    return -((np.asarray(X) - TARGET) ** 2).sum(axis=1)


def make(name: str, seed: int = 0) -> BaseStrategy:
    if name == "cmaes" and importlib.util.find_spec("cmaes") is None:
        pytest.skip("Optuna's CmaEsSampler needs the 'cmaes' package (the 'bench' extra)")
    return STRATEGIES[name].create(SPACE, POPULATION, seed)


def run(strategy: BaseStrategy, generations: int) -> list[tuple[np.ndarray, np.ndarray]]:
    history = []
    for g in range(generations):
        X = strategy.ask(g)
        values = toy(X)
        strategy.tell(g, X, values)
        history.append((X, values))
    return history


@pytest.fixture(autouse=True)
def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


NAMES = list(STRATEGIES)


def test_registry_names() -> None:
    assert set(STRATEGIES) >= {"cem", "steady-cem", "tpe", "cmaes", "random", "nsga2"}


@pytest.mark.parametrize("name", NAMES)
def test_asks_have_the_population_shape_and_stay_in_the_box(name: str) -> None:
    strategy = make(name)
    for X, _ in run(strategy, 3):
        assert X.shape == (POPULATION, SPACE.dim)
        assert SPACE.contains(X)
    assert np.array_equal(strategy.ask(3), strategy.ask(3))  # asking again repeats the ask
    pick = strategy.pick()
    assert pick.shape == (SPACE.dim,)
    assert SPACE.contains(pick)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_asks_other_seed_other_asks(name: str) -> None:
    a, b, c = (run(make(name, seed), 3) for seed in (7, 7, 8))
    for (xa, va), (xb, vb) in zip(a, b, strict=True):
        assert np.array_equal(xa, xb)
        assert np.array_equal(va, vb)
    assert not np.array_equal(a[0][0], c[0][0])


@pytest.mark.parametrize("name", NAMES)
def test_out_of_order_and_misshapen_tells_are_refused(name: str) -> None:
    strategy = make(name)
    X = strategy.ask(0)
    with pytest.raises(ValueError, match="generation"):
        strategy.tell(1, X, toy(X))
    with pytest.raises(ValueError, match=re.escape(f"need X [M, {SPACE.dim}]")):
        strategy.tell(0, X[:, :1], toy(X))
    with pytest.raises(ValueError, match="values"):
        strategy.tell(0, X, toy(X)[:-1])
    strategy.tell(0, X, toy(X))  # the refused tells left it intact


@pytest.mark.parametrize("name", NAMES)
def test_failed_evaluations_are_tolerated(name: str) -> None:
    strategy = make(name)
    for g in range(3):
        X = strategy.ask(g)
        values = toy(X)
        values[::3] = np.nan
        if g == 1:
            values[:] = np.nan  # a whole generation failed
        strategy.tell(g, X, values)
    assert SPACE.contains(strategy.ask(3))
    assert SPACE.contains(strategy.pick())


@pytest.mark.parametrize("name", NAMES)
def test_replay_of_a_history_continues_the_search(name: str) -> None:
    """Replaying the told generations into a fresh strategy gives a usable strategy at the
    next generation; for CEM and steady-state CEM, exactly the same one."""
    original = make(name, seed=3)
    history = run(original, 3)
    rebuilt = make(name, seed=3)
    rebuilt.replay(history)
    X = rebuilt.ask(3)
    assert X.shape == (POPULATION, SPACE.dim) and SPACE.contains(X)
    if name in ("cem", "steady-cem"):
        assert np.array_equal(X, original.ask(3))
        assert np.array_equal(rebuilt.pick(), original.pick())
    else:  # the study holds every told trial, so its pick is the same best trial
        assert np.array_equal(rebuilt.pick(), original.pick())


@pytest.mark.parametrize("name", NAMES)
def test_climbs_a_concave_objective(name: str) -> None:
    """After 8 generations of 16 the pick is near the optimum and far better than the
    first generation's average."""
    strategy = make(name, seed=1)
    history = run(strategy, 8)
    first = float(history[0][1].mean())
    picked = float(toy(strategy.pick()[None, :])[0])
    assert picked > 0.1 * first  # first is about -4: at least 10x closer to the optimum
    assert picked > -0.25, (name, strategy.pick())


def test_optuna_strategy_records_failed_trials_and_picks_the_best_trial() -> None:
    strategy = STRATEGIES["random"].create(SPACE, POPULATION, 0)
    assert isinstance(strategy, OptunaStrategy)
    X = strategy.ask(0)
    values = toy(X)
    values[0] = np.nan
    strategy.tell(0, X, values)
    states = [t.state for t in strategy.study.trials]
    assert states.count(optuna.trial.TrialState.FAIL) == 1
    assert np.array_equal(strategy.pick(), X[1 + int(np.argmax(values[1:]))])
    with pytest.raises(ValueError, match="only ask the next generation"):
        strategy.ask(5)


# --------------------------------------------------------------------------------------
# Steady-state CEM
# --------------------------------------------------------------------------------------
def test_steady_cem_keeps_the_archive_best_and_replaces_only_the_worst() -> None:
    config = SteadyCEMConfig(population=POPULATION, replace_fraction=0.25)
    strategy = SteadyCEM(SPACE, config, seed=2)
    keep = POPULATION - config.n_replace
    best_x, best_value = None, -np.inf
    X = strategy.ask(0)
    for g in range(6):
        values = toy(X)
        i = int(np.argmax(values))
        if values[i] > best_value:
            best_x, best_value = X[i].copy(), float(values[i])
        strategy.tell(g, X, values)
        archive_x, archive_values, counts = strategy.archive()
        assert np.array_equal(archive_x[0], best_x)  # the best ever leads the archive
        assert archive_values[0] == pytest.approx(best_value, rel=1e-12)  # re-averaged
        next_X = strategy.ask(g + 1)
        assert np.array_equal(next_X[:keep], archive_x)  # survivors come first, best first
        # survivors are the best `keep` of this round, and were evaluated before
        order = np.argsort(-values, kind="stable")[:keep]
        assert {tuple(r) for r in next_X[:keep]} == {tuple(r) for r in X[order]}
        assert (counts >= 1).all() and (counts.max() > 1 or g == 0)
        X = next_X


def test_steady_cem_averages_a_survivor_over_its_evaluations() -> None:
    strategy = SteadyCEM(SPACE, SteadyCEMConfig(population=4, replace_fraction=0.5), seed=0)
    X0 = strategy.ask(0)
    strategy.tell(0, X0, np.array([4.0, 3.0, 1.0, 0.0]))
    X1 = strategy.ask(1)
    assert np.array_equal(X1[:2], X0[:2])
    strategy.tell(1, X1, np.array([0.0, np.nan, 2.0, -1.0]))  # survivor 0 drops to 2.0
    archive_x, archive_values, counts = strategy.archive()
    assert np.array_equal(archive_x[0], X0[1])  # 3.0 (1 finite evaluation) now leads
    assert archive_values.tolist() == [3.0, 2.0]
    assert counts.tolist() == [1, 2]


def test_steady_cem_replacing_everything_is_plain_cem() -> None:
    steady = SteadyCEM(SPACE, SteadyCEMConfig(population=POPULATION, replace_fraction=1.0),
                       seed=4)
    plain = CEM(SPACE, CEMConfig(population=POPULATION), seed=4)
    for g in range(4):
        X = steady.ask(g)
        assert np.array_equal(X, plain.ask(g))
        steady.tell(g, X, toy(X))
        plain.tell(g, X, toy(X))
    np.testing.assert_allclose(steady.pick(), plain.pick())


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"population": 1}, ValueError, "population is 1"),
        ({"population": 2.0}, TypeError, "must be an int"),
        ({"population": True}, TypeError, "must be an int"),
        ({"replace_fraction": 0.0}, ValueError, "replace_fraction is 0.0"),
        ({"replace_fraction": 1.5}, ValueError, "replace_fraction is 1.5"),
        ({"elite_fraction": float("nan")}, ValueError, "elite_fraction is nan"),
        ({"smoothing": 0.0}, ValueError, "smoothing is 0.0"),
        ({"sigma_floor": 1.0}, ValueError, "sigma_floor is 1.0"),
        ({"init_sigma": 0.01}, ValueError, "init_sigma is 0.01"),
    ],
)
def test_steady_cem_config_rejects_bad_values(
    kwargs: dict[str, object], error: type[Exception], pattern: str
) -> None:
    with pytest.raises(error, match=pattern):
        SteadyCEMConfig(**kwargs)  # type: ignore[arg-type]


def test_steady_cem_config_counts() -> None:
    config = SteadyCEMConfig(population=10, replace_fraction=0.3, elite_fraction=0.25)
    assert (config.n_replace, config.n_elite) == (3, 3)
    assert SteadyCEMConfig(population=10, replace_fraction=0.01).n_replace == 1
