"""``search run --config F --space fusion|loss|joint``, and loss-weight studies in
``search history`` and ``search export``."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna

from tuner.cli._common import study_names
from tuner.evaluation.loss_study import is_loss_study
from tuner.evaluation.objective import FusionObjective
from tuner.evaluation.search_data import SearchSettings, Workspace
from tuner.picks.export import ExportedWeights
from tuner.picks.picking import export_pick, pick_weights
from tuner.space import FusionSpace
from tuner.strategies import CEMConfig
from tuner.study import SearchSpec, create_or_load_study, load_search, read_spec

if TYPE_CHECKING:
    from tuner.search_config import SearchConfig

# The loss-weight machinery (tuner.evaluation.loss_objective, ranker_cache,
# search_config) imports the ranker and torch: it is imported in the functions that use
# it, so that the commands that do not ('--help', 'search history') start at once.

__all__ = ["export_loss_study", "objective_for", "open_config_study"]

Evaluate = Callable[[np.ndarray], Any]


def objective_for(settings: dict[str, Any], progress: bool = False) -> Evaluate:
    """The objective a study's stored settings define (fusion or loss-weight study)."""
    from tuner.evaluation.loss_objective import LossObjective, config_of

    if is_loss_study(settings):
        return LossObjective(config_of(settings), progress=progress)
    from tuner.evaluation.streamed import open_workspace

    return FusionObjective.for_workspace(open_workspace(SearchSettings.from_dict(settings)))


def _fusion_settings(config: SearchConfig, say: Callable[[str], None]
                     ) -> tuple[SearchSettings, FusionSpace]:
    """A fusion study's settings from a search file (training the base ranker if needed)."""
    from tuner.evaluation.loss_objective import control_weights, fusion_space
    from tuner.evaluation.ranker_cache import RankerCache

    scores, model_fp = config.scores, ""
    if scores is None:  # the ranker with every loss weight 1, trained once and cached
        cache = RankerCache(config)
        assert config.ranker is not None
        run = cache.run(dict.fromkeys(config.ranker.task_names, 1.0))
        say(f"ranker with loss weights 1: {'trained' if run.trained else 'cached'} "
            f"({run.folder})")
        scores, model_fp = str(run.scores), run.model_fingerprint
        traffic = cache.traffic
    else:
        from simulator.logs import LoggedTraffic

        traffic = LoggedTraffic.read(config.logs)
    from tuner.evaluation.scores import ScoreTable

    table_ = ScoreTable.read(scores)
    space = fusion_space(config, table_.tasks)
    conditional = config.ranker.conditional if config.ranker is not None else {}
    settings = SearchSettings(
        logs=config.logs, scores=scores, objective=dict(config.objective),
        estimator=config.estimator, estimator_params=dict(config.estimator_params),
        formula=config.formula, splits=dict(config.splits),
        split_seed=config.split_seed, conditional=conditional,
        control=control_weights(config, space).tolist(), n_bootstrap=config.n_bootstrap,
        guardrails=dict(config.guardrails), data_fingerprint=traffic.fingerprint(),
        model_fingerprint=model_fp, interval=config.interval,
        examination=None if config.examination is None else list(config.examination))
    Workspace(settings, traffic, table_).check()  # refuses a bad pair before the study exists
    return settings, space


def open_config_study(url: str, study_name: str, config_path: str | None, space_name: str | None,
                      say: Callable[[str], None]) -> tuple[optuna.Study, SearchSpec, int]:
    """Create (from a search file) or continue a study; also its file's ``rounds``.

    An existing study keeps its stored settings: a ``--config``/``--space`` that differs
    from them is refused.
    """
    from tuner.evaluation.loss_objective import (
        config_of,
        control_weights,
        fusion_space,
        loss_space,
        study_settings,
    )
    from tuner.evaluation.ranker_cache import RankerCache
    from tuner.search_config import load_search_config

    names = study_names(url)
    config = None
    if config_path is not None:
        config = load_search_config(config_path)
        if space_name is not None:
            config = config.with_space(space_name)
    if study_name in names:
        study, search = load_search(url, study_name)
        raw = search.settings
        stored_space = config_of(raw).space if is_loss_study(raw) else "fusion"
        if space_name is not None and space_name != stored_space:
            raise ValueError(f"study {study_name!r} searches space {stored_space!r}, not "
                             f"{space_name!r}; use a new --study for another space")
        if config is not None and is_loss_study(raw) and config.raw != config_of(raw).raw:
            raise ValueError(f"--config {config_path} differs from the search file study "
                             f"{study_name!r} stored; omit --config to continue it, or use a "
                             "new --study")
        rounds = config_of(raw).rounds if is_loss_study(raw) else config.rounds if config else 1
        return study, search, rounds
    if config is None:
        existing = ", ".join(sorted(names)) or "none"
        raise ValueError(f"study {study_name!r} does not exist in {url} (studies: {existing}); "
                         "to create it from a search file give --config")
    cem = CEMConfig(population=config.population, elite_fraction=config.elite_fraction)
    init: np.ndarray | None
    if config.space == "fusion":
        settings, space = _fusion_settings(config, say)
        init = space.from_weights(np.asarray(settings.control))
        study = create_or_load_study(url, study_name, space, cem, config.seed,
                                     settings=settings.to_dict(), init_mean=init)
    else:
        space = loss_space(config)
        assert config.ranker is not None  # refuse a bad control before any training
        RankerCache(config)  # the log has a label for every ranker task
        control_weights(config, fusion_space(config, config.ranker.task_names))
        ones = space.from_weights(np.ones(len(space.tasks)))
        init = ones if space.contains(ones) else None
        study = create_or_load_study(url, study_name, space, cem, config.seed,
                                     settings=study_settings(config), init_mean=init)
    return study, read_spec(study), config.rounds


def export_loss_study(study: optuna.Study, search: SearchSpec, pick: str,
                      trial_number: int | None,
                      say: Callable[[str], None]) -> tuple[ExportedWeights, Any, dict[str, float]]:
    """Export the loss weights of a pick with the fusion weights that go with them.

    The ranker of the pick is taken from the cache (trained now if it is not there, e.g.
    the strategy's pick); its fusion weights are the trial's (``loss``: control; ``joint``:
    the inner CEM's mean), judged on the held-out split.
    """
    from tuner.evaluation.loss_objective import LossObjective, config_of

    config = config_of(search.settings)
    space = search.space
    loss_weights, number = pick_weights(study, search, pick, trial_number)
    objective = LossObjective(config)
    weights = dict(zip(space.tasks, loss_weights.tolist(), strict=True))
    run = objective.cache.run(weights)
    if run.trained:
        say(f"trained the ranker of the {pick} loss weights ({run.folder})")
    ws = objective.workspace(run)
    fusion = objective.fusion_pick(ws)
    exported, report, search_values = export_pick(ws, study.study_name, fusion, pick, number)
    extra = {
        **exported.extra,
        "space": config.space,
        "loss_weights": weights,
        "ranker_checkpoint": str(run.checkpoint),
        "ranker_scores": str(run.scores),
        "ranker_valid_metrics": run.valid_metrics,
    }
    return dataclasses.replace(exported, extra=json.loads(json.dumps(extra))), report, \
        search_values

