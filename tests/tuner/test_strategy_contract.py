"""The study loop's contract, run over every registered strategy (``STRATEGIES``).

For each strategy: a study run in one go, a run interrupted in the middle of a generation
and resumed, and two workers that share the rounds one after the other all hold the same
trials (params, values, round and member) and the same pick. Adding a strategy to
``STRATEGIES`` adds it here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from tests.tuner import toy_objective as toy
from tuner.picks.picking import pick_weights
from tuner.strategies import STRATEGIES, make_config
from tuner.study import (
    SearchSpec,
    TrialResult,
    WorkerConfig,
    create_or_load_study,
    history,
    load_search,
    run_rounds,
    run_worker,
)

ROUNDS = 3
POPULATION = 6


def _config(name: str) -> object:
    return make_config(name, {"population": POPULATION})


def _trials(study: optuna.Study) -> list[tuple[int, int, dict[str, float], float | None]]:
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return sorted((t.user_attrs["round"], t.user_attrs["member"], t.params, t.value)
                  for t in done)


def _new(tmp_path: Path, file: str, name: str) -> tuple[str, optuna.Study, SearchSpec]:
    url = f"sqlite:///{tmp_path / file}"
    study = create_or_load_study(url, "s", toy.SPACE, _config(name), seed=toy.SEED)
    return url, study, load_search(url, "s")[1]


@pytest.fixture(scope="module", params=sorted(STRATEGIES))
def reference(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
              ) -> tuple[str, optuna.Study, SearchSpec]:
    """The study of an uninterrupted run of strategy ``request.param``."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = request.param
    _, study, search = _new(tmp_path_factory.mktemp(name), "ref.db", name)
    run_rounds(study, search, toy.evaluate, until=ROUNDS, progress=False)
    return name, study, search


def test_the_study_stores_the_strategy(reference: tuple[str, optuna.Study, SearchSpec]) -> None:
    name, study, search = reference
    assert search.strategy == name == study.user_attrs["fusiontune:strategy"]
    assert search.config == _config(name)
    assert len(_trials(study)) == ROUNDS * POPULATION
    assert [s.round for s in history(study, search)] == list(range(ROUNDS))
    assert study.metric_names == ["objective"]


@pytest.mark.slow
def test_interrupted_and_resumed_run_equals_the_uninterrupted_one(
        reference: tuple[str, optuna.Study, SearchSpec], tmp_path: Path) -> None:
    name, ref, ref_search = reference
    url, study, search = _new(tmp_path, "crash.db", name)
    calls: list[int] = []

    def dies_on_the_second_call(W: np.ndarray) -> list[TrialResult]:
        calls.append(len(W))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return toy.evaluate(W)

    with pytest.raises(KeyboardInterrupt):
        run_rounds(study, search, dies_on_the_second_call, until=ROUNDS, progress=False)
    # half of the next generation written, then the process dies
    real_add = study.add_trial
    added: list[object] = []

    def add_then_die(trial: optuna.trial.FrozenTrial) -> None:
        if len(added) == POPULATION // 2:
            raise KeyboardInterrupt
        added.append(trial)
        real_add(trial)

    study.add_trial = add_then_die  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        run_rounds(study, search, toy.evaluate, until=ROUNDS, progress=False)
    study, search = load_search(url, "s")  # a new process: everything from the database
    run_rounds(study, search, toy.evaluate, until=ROUNDS, progress=False)
    assert _trials(study) == _trials(ref)
    assert run_rounds(study, search, toy.evaluate, until=ROUNDS, progress=False) == []
    assert np.array_equal(pick_weights(study, search, "strategy")[0],
                          pick_weights(ref, ref_search, "strategy")[0])


@pytest.mark.slow
def test_two_workers_equal_one_process(reference: tuple[str, optuna.Study, SearchSpec],
                                       tmp_path: Path) -> None:
    name, ref, _ = reference
    url, study, _ = _new(tmp_path, "workers.db", name)
    config = WorkerConfig(chunk=4, heartbeat_interval=0.05, stale_after=0.2,
                          poll_interval=0.01)
    first = run_worker(url, "s", toy.evaluate, until=1, config=config, worker="w1")
    second = run_worker(url, "s", toy.evaluate, until=ROUNDS, config=config, worker="w2")
    assert (first.rounds_done, second.rounds_done) == (1, ROUNDS)
    assert first.evaluated + second.evaluated == ROUNDS * POPULATION
    assert _trials(study) == _trials(ref)
