"""CEM as a plain Optuna sampler, for ``study.optimize`` and many-worker studies."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from tuner.space import FusionSpace
from tuner.strategies._cem import CEM, CEMConfig, CEMState

__all__ = ["CEMSampler"]


class CEMSampler(BaseSampler):
    """Samples the parameters of a :class:`FusionSpace` with :class:`CEM`.

    A trial's place in the search comes from the study itself: let ``i`` be its index among
    the study's non-FAIL trials sorted by number; it is member ``i % M`` of generation
    ``i // M``. Its parameters are row ``i % M`` of the population CEM draws for that
    generation from the state refitted on every earlier generation, each of which must be
    finished (COMPLETE, or PRUNED which counts as a failed member). The state is
    reconstructed from the study's trials (and cached), never pickled into attributes.

    If an earlier generation still has RUNNING or WAITING members (workers in parallel, or
    ``n_jobs > 1``), the sampler does not wait: it uses the state after the last fully
    finished generation, so members of one generation may come from different states. The
    search stays valid, but it is then reproducible only when trials finish in the same
    order; run one worker (or use :func:`tuner.study.run_rounds`) for bit-exact replays.
    A trial that later FAILs shifts the index of every later trial.

    Parameters outside the space (other names or distributions) are sampled by a
    ``RandomSampler(seed)``. Minimising studies are supported by negating values.

    Args:
        space: the search space; ``trial.suggest_float(name, low, high)`` with the space's
            names and bounds receives CEM's values.
        config: CEM hyperparameters.
        seed: seed of CEM's sampling and of the fallback random sampler.
        init_mean: initial mean, ``[dim]`` or a full weight vector ``[T]``.

    Example:
        >>> import optuna
        >>> space = FusionSpace(("a", "b"), pinned="a")
        >>> sampler = CEMSampler(space, CEMConfig(population=4), seed=1)
        >>> study = optuna.create_study(direction="maximize", sampler=sampler)
        >>> study.optimize(lambda t: -(t.suggest_float("w_b", 0.0, 4.0) - 1.0) ** 2,
        ...                n_trials=8)
    """

    def __init__(
        self,
        space: FusionSpace,
        config: CEMConfig | None = None,
        seed: int = 0,
        init_mean: np.ndarray | None = None,
    ) -> None:
        self._cem = CEM(space, config, seed, init_mean)
        self._initial = self._cem.state
        self._random = RandomSampler(seed=seed)
        self._lock = threading.Lock()
        # _cache[h] = (numbers of generation h's trials, state after generation h)
        self._cache: list[tuple[tuple[int, ...], CEMState]] = []

    @property
    def space(self) -> FusionSpace:
        return self._cem.space

    @property
    def config(self) -> CEMConfig:
        return self._cem.config

    def reseed_rng(self) -> None:
        # CEM's draws stay a function of (seed, generation, state) on purpose
        self._random.reseed_rng()

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        self._raise_error_if_multi_objective(study)
        return dict(self.space.distributions())

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        live = sorted(
            (t for t in study.get_trials(deepcopy=False) if t.state != TrialState.FAIL),
            key=lambda t: t.number,
        )
        numbers = [t.number for t in live]
        index = numbers.index(trial.number) if trial.number in numbers else len(live)
        generation, member = divmod(index, self.config.population)
        sign = -1.0 if study.direction == StudyDirection.MINIMIZE else 1.0
        with self._lock:
            state = self._state_before(live, generation, sign)
            X = self._cem.sample(state, generation)
        params = self.space.to_params(X[member])
        return {k: v for k, v in params.items() if k in search_space}

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def _state_before(self, live: Sequence[FrozenTrial], generation: int, sign: float) -> CEMState:
        """State after the longest finished prefix of generations ``0 .. generation - 1``."""
        m = self.config.population
        state = self._initial
        for h in range(generation):
            members = live[h * m : (h + 1) * m]
            key = tuple(t.number for t in members)
            if h < len(self._cache) and self._cache[h][0] == key:
                state = self._cache[h][1]
                continue
            del self._cache[h:]
            finished = (TrialState.COMPLETE, TrialState.PRUNED)
            if len(members) < m or any(t.state not in finished for t in members):
                break
            X, values = self._generation_data(members, np.asarray(state.mean), sign)
            self._cem.state = state
            self._cem.tell(h, X, values)
            state = self._cem.state
            self._cache.append((key, state))
        return state

    def _generation_data(
        self, members: Sequence[FrozenTrial], mean: np.ndarray, sign: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """``X [M, dim]`` and ``values [M]`` of one finished generation (NaN = failed)."""
        X = np.empty((len(members), self.space.dim))
        values = np.full(len(members), np.nan)
        for i, t in enumerate(members):
            try:
                X[i] = self.space.clip(self.space.from_params(t.params))
            except KeyError:  # a trial that never suggested the space: never elite
                X[i] = mean
                continue
            if t.state == TrialState.COMPLETE and t.value is not None:
                values[i] = sign * float(t.value)
        return X, values
