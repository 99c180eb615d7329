"""Hyperparameters of the Optuna-sampler strategies, one frozen config per sampler, so a
study's stored config names its strategy's settings as CEM's does."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CMAESConfig", "NSGA2Config", "RandomConfig", "TPEConfig"]


def _check_population(owner: str, population: object, least: int = 1) -> None:
    if isinstance(population, bool) or not isinstance(population, int):
        raise TypeError(f"{owner}.population must be an int, got {population!r}")
    if population < least:
        raise ValueError(f"{owner}.population is {population}; need at least {least}")


@dataclass(frozen=True)
class TPEConfig:
    """Optuna's TPE, asked ``population`` trials at a time (constant liar for the pending).

    Args:
        population: trials per generation ``M``.
        n_startup_trials: random trials before TPE models the results (Optuna's default).
    """

    population: int = 32
    n_startup_trials: int = 10

    def __post_init__(self) -> None:
        _check_population("TPEConfig", self.population)
        if isinstance(self.n_startup_trials, bool) or not isinstance(self.n_startup_trials, int) \
                or self.n_startup_trials < 0:
            raise ValueError(f"TPEConfig.n_startup_trials is {self.n_startup_trials!r}; "
                             "need an int >= 0")


@dataclass(frozen=True)
class CMAESConfig:
    """Optuna's CMA-ES with ``popsize = population``.

    Args:
        population: trials per generation ``M`` (CMA-ES's population size, at least 2).
    """

    population: int = 32

    def __post_init__(self) -> None:
        _check_population("CMAESConfig", self.population, least=2)


@dataclass(frozen=True)
class RandomConfig:
    """Uniform random search in the box.

    Args:
        population: trials per generation ``M``.
    """

    population: int = 32

    def __post_init__(self) -> None:
        _check_population("RandomConfig", self.population)


@dataclass(frozen=True)
class NSGA2Config:
    """Optuna's NSGA-II on one objective (a genetic algorithm), ``population_size =
    population``.

    Args:
        population: trials per generation ``M`` (at least 2).
    """

    population: int = 32

    def __post_init__(self) -> None:
        _check_population("NSGA2Config", self.population, least=2)
