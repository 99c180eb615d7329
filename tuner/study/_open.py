"""Opening a fusiontune study: creating it with its :class:`SearchSpec`, or loading it and
checking what a caller passes against what it stored.

Every trial is an ordinary Optuna trial (``optuna-dashboard <url>`` shows them) tagged with
user attrs ``round`` and ``member``; the search settings live in study user attrs
(``fusiontune:strategy``, ``fusiontune:config``, ``fusiontune:space``, ``fusiontune:seed``,
``fusiontune:settings``, ``fusiontune:init_mean``), so a search continues from the database
alone. A strategy's state is never stored: it is replayed from the trials of completed
rounds.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Mapping
from typing import Any

import numpy as np
import optuna
from optuna.storages import RDBStorage
from optuna.study import StudyDirection

from tuner.space import FusionSpace
from tuner.storage import optuna_schema_is_current, read_snapshot
from tuner.strategies import CEMConfig, CEMSampler, strategy_name
from tuner.study._attrs import (
    ATTR_LEARNED_OF,
    ATTR_SETTINGS,
    SearchSpec,
    _check_same,
    _json_roundtrip,
    name_metrics,
    read_spec,
)

__all__ = ["create_or_load_study", "load_search", "read_search", "stored_settings"]

# URL of the storage each study was opened with here, so run_rounds can reach the project
# tables without reading Optuna's private storage handle.
_STUDY_URLS: weakref.WeakKeyDictionary[optuna.Study, str] = weakref.WeakKeyDictionary()

METRIC_NAME = "objective"
"""Name of a single-objective study's value, shown by Optuna's dashboard."""


def create_or_load_study(
    storage: str,
    study_name: str,
    space: FusionSpace | None = None,
    config: Any | None = None,
    seed: int | None = None,
    settings: Mapping[str, Any] | None = None,
    create: bool = True,
    init_mean: np.ndarray | None = None,
) -> optuna.Study:
    """Open a fusiontune study, creating it (maximising) if needed.

    A new study stores its :class:`SearchSpec`: the strategy ``config`` belongs to (a
    registered config such as :class:`~tuner.strategies.CEMConfig` or
    :class:`~tuner.strategies.TPEConfig`), ``space``, ``seed``, ``settings`` (JSON-able) and
    the initial mean; space, config and seed are required then. An existing study keeps
    what it stored: any of them passed here must agree.

    Args:
        storage: SQLAlchemy URL, e.g. ``"sqlite:///search.db"``.
        study_name: name of the study.
        space: the search space.
        config: the strategy's config; it names the strategy.
        seed: the strategy's seed.
        settings: other JSON-able settings of the search (data paths, objective...).
        create: if False, a missing study is an error.
        init_mean: initial mean, ``[dim]`` or full weights ``[T]``; default box centre.

    Raises:
        ValueError: a setting conflicts with the stored one, the study is missing and
            ``create`` is False, the study was not made by fusiontune, or a new study lacks
            space/config/seed.
    """
    # here, not at the top: read_search (search history) must not import the ORM
    from tuner.storage import ProjectStore

    ProjectStore(storage).ensure_schema()  # first: a bad URL is a one-line StorageError
    # Optuna's schema check (its migration scripts) only where the revision is not the head
    rdb = RDBStorage(storage, skip_compatibility_check=optuna_schema_is_current(storage))
    names = optuna.get_all_study_names(rdb)
    if study_name in names:
        study = optuna.load_study(study_name=study_name, storage=rdb)
        stored = _check_loaded(study, storage, space, config, seed, settings, init_mean)
    else:
        if not create:
            raise ValueError(
                f"no study named {study_name!r} in {storage}; existing studies: "
                f"{sorted(names) or 'none'} (create one with create=True)"
            )
        missing = [
            n for n, v in (("space", space), ("config", config), ("seed", seed)) if v is None
        ]
        if missing or space is None or config is None or seed is None:
            raise ValueError(f"a new study {study_name!r} needs {missing}")
        stored = SearchSpec.new(space, config, seed, init_mean, settings)
        attrs = stored.attrs()  # checks settings are JSON-able before anything is written
        study = optuna.create_study(storage=rdb, study_name=study_name, direction="maximize")
        name_metrics(study, [METRIC_NAME])
        for key, value in attrs.items():
            study.set_user_attr(key, value)
    if isinstance(stored.config, CEMConfig):  # study.optimize() then samples CEM too
        study.sampler = CEMSampler(stored.space, stored.config, stored.seed,
                                   np.asarray(stored.init_mean))
    _STUDY_URLS[study] = storage
    return study


def _check_loaded(study: optuna.Study, storage: str, space: FusionSpace | None,
                  config: Any | None, seed: int | None, settings: Mapping[str, Any] | None,
                  init_mean: np.ndarray | None) -> SearchSpec:
    name = study.study_name
    learned_of = study.user_attrs.get(ATTR_LEARNED_OF)
    if learned_of is not None:
        parent = learned_of.get("study")
        raise ValueError(f"study {name!r} holds the learned weight model of study {parent!r}; "
                         f"use 'fusiontune search personalise --study {parent}' or 'fusiontune "
                         f"search compare --study {parent}'")
    pareto = "fusiontune:pareto" in study.user_attrs  # tuner.pareto: one direction a metric
    if not pareto and "fusiontune:space" not in study.user_attrs:
        raise ValueError(f"study {name!r} in {storage} is not a fusiontune study "
                         "(made by plain Optuna?)")
    if not pareto and study.directions != [StudyDirection.MAXIMIZE]:
        raise ValueError(f"study {name!r} in {storage} is not single-objective max")
    stored = read_spec(study)
    _check_same(name, "space", stored.space.to_dict(), space and space.to_dict())
    if config is not None:
        _check_same(name, "strategy", stored.strategy, strategy_name(config))
        _check_same(name, "config", dataclasses.asdict(stored.config),
                    dataclasses.asdict(config))
    _check_same(name, "seed", stored.seed, seed)
    if settings is not None:
        _check_same(name, "settings", study.user_attrs.get(ATTR_SETTINGS, {}),
                    _json_roundtrip(settings, "settings"))
    if init_mean is not None:
        wanted = SearchSpec.new(stored.space, stored.config, stored.seed, init_mean).init_mean
        _check_same(name, "init_mean", list(stored.init_mean), list(wanted))
    return stored


def stored_settings(study: optuna.Study) -> dict[str, Any]:
    """The search settings a study stored (``fusiontune:settings``; empty if none)."""
    return dict(study.user_attrs.get(ATTR_SETTINGS, {}))


def load_search(storage: str, study_name: str) -> tuple[optuna.Study, SearchSpec]:
    """Everything needed to continue a search, from the database alone.

    Returns:
        ``(study, spec)``; ``spec.build()`` makes the stored strategy.
    """
    study = create_or_load_study(storage, study_name, create=False)
    return study, read_spec(study)


def read_search(storage: str, study_name: str) -> tuple[optuna.Study, SearchSpec]:
    """:func:`load_search` for reading only: the study is a snapshot of its rows
    (:func:`tuner.storage.read_snapshot`), opened without an Optuna storage, alembic or any
    write; every write to it raises :class:`~tuner.storage.ReadOnlyStudyError`. A database
    at another schema revision is opened by :func:`load_search`, whose checks name it.

    Raises:
        ValueError: the study is missing or was not made by fusiontune.
    """
    try:
        snapshot = read_snapshot(storage, study_name)
    except KeyError:
        raise ValueError(f"no study named {study_name!r} in {storage}") from None
    if snapshot is None:
        return load_search(storage, study_name)
    study = optuna.load_study(study_name=study_name, storage=snapshot)
    return study, _check_loaded(study, storage, None, None, None, None, None)
