from __future__ import annotations

import numpy as np
import optuna
import pytest

from tuner.space import FusionSpace
from tuner.strategies import CEM, CEMConfig, CEMSampler

SPACE = FusionSpace(("a", "b", "c", "d"), pinned="a")
TARGET = np.array([2.5, 0.7, 1.5])


def _f(X: np.ndarray) -> np.ndarray:
    return -((np.atleast_2d(X) - TARGET) ** 2).sum(axis=1)


def _run(cem: CEM, generations: int) -> list[tuple[np.ndarray, np.ndarray]]:
    history = []
    for g in range(generations):
        X = cem.ask(g)
        values = _f(X)
        cem.tell(g, X, values)
        history.append((X, values))
    return history


def test_converges_on_concave_function() -> None:
    cem = CEM(SPACE, CEMConfig(population=32), seed=3)
    _run(cem, 25)
    np.testing.assert_allclose(cem.state.mean, TARGET, atol=0.1)
    assert cem.state.sigma == pytest.approx((0.2,) * 3)  # at the floor, 0.05 * 4


def test_same_seed_same_populations_and_replay_equals_live() -> None:
    a, b = CEM(SPACE, seed=7), CEM(SPACE, seed=7)
    history = _run(a, 6)
    _run(b, 6)
    assert a.state == b.state
    assert not np.array_equal(CEM(SPACE, seed=8).ask(0), CEM(SPACE, seed=7).ask(0))
    fresh = CEM(SPACE, seed=7)
    fresh.replay(history)
    assert fresh.state == a.state


def test_nan_never_elite_and_init_mean() -> None:
    init = np.array([2.0, 1.0, 1.0, 3.0])  # full weights, pinned 'a' = 2 -> rescaled
    cem = CEM(SPACE, CEMConfig(population=4, elite_fraction=0.25, smoothing=1.0), 0, init)
    np.testing.assert_allclose(cem.state.mean, [0.5, 0.5, 1.5])
    X = cem.ask(0)
    cem.tell(0, X, np.array([np.nan, 1.0, np.nan, 0.0]))
    np.testing.assert_allclose(cem.state.mean, X[1])
    with pytest.raises(ValueError, match="expects generation 1"):
        cem.tell(0, X, np.zeros(4))


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"population": 1}, "population is 1"),
        ({"elite_fraction": 0.0}, "elite_fraction"),
        ({"smoothing": 1.5}, "smoothing"),
        ({"sigma_floor": 0.5, "init_sigma": 0.1}, "sigma_floor"),
    ],
)
def test_config_validation(kwargs: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        CEMConfig(**kwargs)


def _sampler_study(seed: int) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = CEMSampler(SPACE, CEMConfig(population=16), seed=seed)
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        x = [trial.suggest_float(n, SPACE.low, SPACE.high) for n in SPACE.param_names]
        return float(_f(np.array(x))[0])

    study.optimize(objective, n_trials=160)
    return study


def test_sampler_improves_and_is_reproducible() -> None:
    study = _sampler_study(1)
    values = np.array([t.value for t in study.trials])
    assert values[-16:].mean() > values[:16].mean() + 1.0
    assert values[-16:].mean() > -0.5
    again = _sampler_study(1)
    assert [t.params for t in again.trials] == [t.params for t in study.trials]
    # the sampler draws exactly CEM's populations
    first = CEM(SPACE, CEMConfig(population=16), seed=1).ask(0)
    np.testing.assert_array_equal(SPACE.from_params(study.trials[3].params), first[3])
