"""The study user attrs that hold a search's settings, and the JSON forms they are stored in.

A fusiontune study stores its space, CEM config, seed, other settings and initial CEM mean as
study user attrs (``fusiontune:*``), so a search continues from the database alone.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna

from tuner.space import FusionSpace
from tuner.strategies import CEM, CEMConfig

__all__ = [
    "ATTR_CONFIG",
    "ATTR_INIT_MEAN",
    "ATTR_SEED",
    "ATTR_SETTINGS",
    "ATTR_SPACE",
    "jsonable",
    "name_metrics",
]

ATTR_SPACE = "fusiontune:space"
ATTR_CONFIG = "fusiontune:config"
ATTR_SEED = "fusiontune:seed"
ATTR_SETTINGS = "fusiontune:settings"
ATTR_INIT_MEAN = "fusiontune:init_mean"


def name_metrics(study: optuna.Study, names: Sequence[str]) -> None:
    """Name the study's objectives (``optuna-dashboard`` shows them, not "Objective 0").

    Optuna's ``Study.set_metric_names`` (experimental since 3.2; its warning is silenced).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(names))


def _read_attrs(
    study: optuna.Study,
) -> tuple[FusionSpace, CEMConfig, int, dict[str, Any], list[float]]:
    attrs = study.user_attrs
    missing = [k for k in (ATTR_SPACE, ATTR_CONFIG, ATTR_SEED) if k not in attrs]
    if missing:
        raise ValueError(
            f"study {study.study_name!r} lacks user attrs {missing}; it was not created by "
            "fusiontune (create_or_load_study)"
        )
    space = FusionSpace.from_dict(attrs[ATTR_SPACE])
    config = CEMConfig(**attrs[ATTR_CONFIG])
    seed = int(attrs[ATTR_SEED])
    init = attrs.get(ATTR_INIT_MEAN)
    if init is None:
        init = CEM(space, config, seed).init_mean.tolist()
    return space, config, seed, dict(attrs.get(ATTR_SETTINGS, {})), list(init)


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
