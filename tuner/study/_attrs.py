"""The study user attrs that hold a search's settings, and the JSON forms they are stored in.

A fusiontune study stores its strategy's name and config, its space, seed, other settings
and the strategy's initial mean as study user attrs (``fusiontune:*``), so a search
continues from the database alone. :class:`SearchSpec` is what they hold.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna

from tuner.space import FusionSpace
from tuner.strategies import (
    BaseStrategy,
    initial_mean,
    make_config,
    make_strategy,
    strategy_name,
)

__all__ = [
    "ATTR_CONFIG",
    "ATTR_EXPORTED",
    "ATTR_INIT_MEAN",
    "ATTR_LEARNED_OF",
    "ATTR_SEED",
    "ATTR_SETTINGS",
    "ATTR_SPACE",
    "ATTR_STRATEGY",
    "SearchSpec",
    "exported_attr",
    "jsonable",
    "name_metrics",
    "read_spec",
]

ATTR_SPACE = "fusiontune:space"
ATTR_CONFIG = "fusiontune:config"
ATTR_SEED = "fusiontune:seed"
ATTR_SETTINGS = "fusiontune:settings"
ATTR_INIT_MEAN = "fusiontune:init_mean"
ATTR_STRATEGY = "fusiontune:strategy"
"""Name of the study's strategy in :data:`tuner.strategies.STRATEGIES`; a study made before
strategies were stored has none and runs ``"cem"``."""
ATTR_EXPORTED = "fusiontune:exported"
"""The last ``search export``: weights, pick, trial and its held-out objective with interval,
so Optuna's dashboard shows the exported answer beside its best (winner's-curse) trial."""
ATTR_LEARNED_OF = "fusiontune:learned_of"
"""User attr of the study ``<study>/learned`` that holds the learned weight model of study
``<study>`` (``tuner.segments``): ``{"study": <study>}``; no fusiontune command runs on it."""


def name_metrics(study: optuna.Study, names: Sequence[str]) -> None:
    """Name the study's objectives (``optuna-dashboard`` shows them, not "Objective 0").

    Optuna's ``Study.set_metric_names`` (experimental since 3.2; its warning is silenced).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(names))


@dataclass(frozen=True)
class SearchSpec:
    """What a study searches and how: everything needed to rebuild its strategy.

    Args:
        strategy: name in :data:`tuner.strategies.STRATEGIES`.
        space: the search space.
        config: the strategy's config (an instance of its registered config class).
        seed: the strategy's seed.
        init_mean: the strategy's starting point ``[dim]`` (the control's, or the box centre).
        settings: the other JSON-able settings of the search (data, objective...).
    """

    strategy: str
    space: FusionSpace
    config: Any
    seed: int
    init_mean: tuple[float, ...]
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def new(cls, space: FusionSpace, config: Any, seed: int,
            init_mean: np.ndarray | None = None,
            settings: Mapping[str, Any] | None = None) -> SearchSpec:
        """The spec of a new search; the strategy is the one ``config`` belongs to and
        ``init_mean`` (``[dim]``, full weights ``[T]`` or None: the box centre) is checked."""
        mean = initial_mean(space, init_mean)
        return cls(strategy_name(config), space, config, int(seed),
                   tuple(float(v) for v in mean), dict(settings or {}))

    @property
    def population(self) -> int:
        """Points per generation of the strategy."""
        return int(self.config.population)

    def build(self) -> BaseStrategy:
        """A fresh strategy, before generation 0."""
        return make_strategy(self.strategy, self.space, self.config, self.seed,
                             np.asarray(self.init_mean))

    def attrs(self) -> dict[str, Any]:
        """The study user attrs that store this spec."""
        return {
            ATTR_STRATEGY: self.strategy,
            ATTR_SPACE: self.space.to_dict(),
            ATTR_CONFIG: dataclasses.asdict(self.config),
            ATTR_SEED: int(self.seed),
            ATTR_SETTINGS: _json_roundtrip(self.settings, "settings"),
            ATTR_INIT_MEAN: list(self.init_mean),
        }


def read_spec(study: optuna.Study) -> SearchSpec:
    """The :class:`SearchSpec` a study stored.

    Raises:
        ValueError: the study lacks fusiontune's attrs (plain Optuna), or they do not parse.
    """
    attrs = study.user_attrs
    missing = [k for k in (ATTR_SPACE, ATTR_CONFIG, ATTR_SEED) if k not in attrs]
    if missing:
        raise ValueError(f"study {study.study_name!r} is not a fusiontune study (made by "
                         f"plain Optuna?): it lacks user attrs {missing}")
    space = FusionSpace.from_dict(attrs[ATTR_SPACE])
    name = str(attrs.get(ATTR_STRATEGY, "cem"))
    config = make_config(name, attrs[ATTR_CONFIG])
    seed = int(attrs[ATTR_SEED])
    init = attrs.get(ATTR_INIT_MEAN)
    mean = initial_mean(space, None if init is None else np.asarray(init, dtype=np.float64))
    return SearchSpec(name, space, config, seed, tuple(float(v) for v in mean),
                      dict(attrs.get(ATTR_SETTINGS, {})))


def _stored_init_mean(study: optuna.Study) -> np.ndarray | None:
    init = study.user_attrs.get(ATTR_INIT_MEAN)
    return None if init is None else np.asarray(init, dtype=np.float64)


def _check_same(study_name: str, setting: str, stored: Any, given: Any) -> None:
    if given is not None and given != stored:
        raise ValueError(
            f"study {study_name!r} was created with {setting} {stored}, not {given}; "
            f"omit {setting} to use the stored one, or start a new study name"
        )


def _json_roundtrip(value: Mapping[str, Any], what: str) -> dict[str, Any]:
    try:
        return dict(json.loads(json.dumps(dict(value), allow_nan=False)))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what} must be JSON-able (finite numbers): {err}") from err


def exported_attr(exported: Mapping[str, Any]) -> dict[str, Any]:
    """The study user attr :data:`ATTR_EXPORTED` of an export record (``ExportedWeights``
    as JSON): ``{"weights", "pick", "trial", "holdout": {"value", "low", "high"},
    "search_value", "control_test", "created_at"}`` (``control_test``: the test the pick
    passed or failed against control, ``extra["control_test"]``; None where none was
    made)."""
    objective = exported.get("objective", {})
    return jsonable({
        "weights": exported.get("weights"),
        "pick": exported.get("pick"),
        "trial": exported.get("trial_number"),
        "holdout": {k: objective.get(k) for k in ("value", "low", "high")},
        "split": objective.get("split"),
        "search_value": exported.get("extra", {}).get("search_split_value"),
        "control_test": exported.get("extra", {}).get("control_test"),
        "created_at": exported.get("created_at"),
    })


def jsonable(x: Any) -> Any:
    """``x`` with numpy scalars made plain and non-finite floats made ``None`` (for JSON)."""
    if isinstance(x, Mapping):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [jsonable(v) for v in x]
    if isinstance(x, float | np.floating):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x
