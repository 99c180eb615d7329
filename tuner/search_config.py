"""A search's configuration file (TOML): data, objective, ranker, and which weights are searched.

One file describes the whole loop; ``search run --config F --space fusion|loss|joint``
picks which weights are searched (``--space`` overrides ``[search] space``):

- ``fusion``: the fusion weights over one score table (``[data] scores``, or the scores
  of the ranker trained once with loss weights 1);
- ``loss``: the ranker's loss weights; each trial trains the ranker (cached), scores the
  logged candidates and evaluates the control fusion weights on them;
- ``joint``: the loss weights, each trial also running a short inner CEM over the fusion
  weights on its scores; the trial's value is the inner pick's estimate.

Example file (paths are relative to the file's folder; every key but ``[data] logs`` and
``[objective]`` is optional)::

    [data]
    logs = "fusiontune-demo/logs.parquet"
    splits = { train = 0.4, valid = 0.1, search = 0.25, holdout = 0.25 }
    split_seed = 0
    # examination = [1, 0.57, 0.42, 0.33, 0.28]   # per slot; a CSV log needs it

    [objective]                  # task = weight of the business objective
    click = 1.0
    conversion = 10.0
    like = 5.0

    [search]
    space = "joint"              # fusion | loss | joint
    estimator = "snips"
    interval = "bootstrap"       # bootstrap | studentized | normal
    rounds = 3                   # outer CEM generations per run
    population = 8
    seed = 0
    guardrails = { like = 0.05 }

    [search.fusion]              # fusion-weight box, control, inner CEM (joint)
    pinned = "click"
    control = { click = 1.0, conversion = 0.5, like = 0.5 }
    rounds = 4
    population = 16

    [search.loss]                # loss-weight box
    pinned = "click"
    low = 0.1
    high = 4.0

    [ranker]
    tasks = ["click", "conversion", "like"]
    sample_spaces = { conversion = "after:click" }
    init = "scratch"             # scratch | warm (from base_checkpoint, `steps` steps)

    [ranker.model]               # as in `fusiontune ranker train` files
    kind = "mmoe"

    [ranker.train]
    epochs = 2
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ranker.config_file import (
    ModelSection,
    parse_model_table,
    parse_train_table,
    read_toml,
    refuse_unknown,
)
from ranker.tasks import TaskSpec, validate_tasks
from ranker.train import TrainConfig
from simulator.estimators import ESTIMATORS
from simulator.fusion import FUSIONS
from tuner.evaluation.search_data import HOLDOUT, INTERVALS, SEARCH

__all__ = [
    "INITS",
    "SPACES",
    "BoxSection",
    "RankerSection",
    "SearchConfig",
    "load_search_config",
    "parse_search_config",
]

SPACES = ("fusion", "loss", "joint")
"""What a search searches: fusion weights, loss weights, or loss weights with inner fusion."""
INITS = ("scratch", "warm")
"""How a loss-weight trial's ranker starts: new weights, or a base checkpoint."""
TRAIN, VALID = "train", "valid"
DEFAULT_SPLITS = {TRAIN: 0.4, VALID: 0.1, SEARCH: 0.25, HOLDOUT: 0.25}

_TABLES = ("data", "objective", "search", "ranker")
_DATA_KEYS = ("logs", "scores", "splits", "split_seed", "examination")
_SEARCH_KEYS = ("space", "estimator", "formula", "interval", "rounds", "population",
                "elite_fraction", "seed", "guardrails", "n_bootstrap", "fusion", "loss")
_FUSION_KEYS = ("pinned", "low", "high", "control", "rounds", "population", "elite_fraction")
_LOSS_KEYS = ("pinned", "low", "high")
_RANKER_KEYS = ("tasks", "sample_spaces", "init", "base_checkpoint", "steps", "cache", "model",
                "train")


@dataclass(frozen=True)
class BoxSection:
    """A weight box with one pinned task (``[search.fusion]`` or ``[search.loss]``).

    Args:
        pinned: task whose weight is 1 (None: the first task).
        low: lower bound of every free weight.
        high: upper bound.
        control: task -> control weight (fusion only): the A/B baseline, CEM's start, and
            the fusion weights a ``loss`` search evaluates.
        rounds: inner CEM generations of a ``joint`` trial.
        population: inner CEM population.
        elite_fraction: inner CEM elite share.
    """

    pinned: str | None = None
    low: float = 0.0
    high: float = 4.0
    control: Mapping[str, float] | None = None
    rounds: int = 4
    population: int = 16
    elite_fraction: float = 0.25


@dataclass(frozen=True)
class RankerSection:
    """``[ranker]``: what a loss-weight trial trains.

    Args:
        tasks: the ranker's tasks with their sample spaces (``after:<task>``).
        model: ``[ranker.model]``, checked as in ``fusiontune ranker train`` files.
        train: ``[ranker.train]`` (a ``scratch`` trial trains with it; a ``warm`` one
            takes its batch size, learning rate, weight decay and seed).
        init: ``"scratch"`` or ``"warm"``.
        base_checkpoint: the checkpoint a ``warm`` trial starts from.
        steps: optimizer steps of a ``warm`` trial (its fixed budget).
        cache: folder of trained rankers and their score tables (None: the default,
            ``$FUSIONTUNE_CACHE/rankers`` or ``~/.cache/fusiontune/rankers``).
    """

    tasks: tuple[TaskSpec, ...]
    model: ModelSection
    train: TrainConfig = field(default_factory=TrainConfig)
    init: str = "scratch"
    base_checkpoint: str | None = None
    steps: int = 200
    cache: str | None = None

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tasks)

    @property
    def conditional(self) -> dict[str, str]:
        """Task -> its parent, for tasks learned ``after:`` another (the reward model chain)."""
        return {t.name: t.parent for t in self.tasks if t.parent is not None}


@dataclass(frozen=True)
class SearchConfig:
    """A parsed, validated search file. ``raw`` (paths absolute) is what a study stores.

    Args:
        raw: the file's tables with resolved paths; :func:`parse_search_config` of it
            gives this config back.
        logs: the logged traffic.
        scores: a score table (``fusion`` space only; None: train the ranker once).
        splits: request split name -> fraction (``train``, ``valid``, ``search``,
            ``holdout``).
        split_seed: seed of the split.
        objective: task -> weight.
        space: one of :data:`SPACES`.
        estimator, formula, interval, rounds, population, elite_fraction, seed,
            guardrails, n_bootstrap: the (outer) search's settings.
        fusion: the fusion-weight box, control and inner CEM.
        loss: the loss-weight box.
        ranker: ``[ranker]`` (None only for a ``fusion`` search over given scores).
    """

    raw: Mapping[str, Any]
    logs: str
    objective: Mapping[str, float]
    scores: str | None = None
    splits: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_SPLITS))
    split_seed: int = 0
    space: str = "fusion"
    estimator: str = "snips"
    formula: str = "multiplicative"
    interval: str = "bootstrap"
    examination: tuple[float, ...] | None = None
    rounds: int = 3
    population: int = 8
    elite_fraction: float = 0.25
    seed: int = 0
    guardrails: Mapping[str, float] = field(default_factory=dict)
    n_bootstrap: int = 200
    fusion: BoxSection = field(default_factory=BoxSection)
    loss: BoxSection = field(default_factory=lambda: BoxSection(low=0.1))
    ranker: RankerSection | None = None

    def with_space(self, space: str) -> SearchConfig:
        """The same file with another ``[search] space`` (``--space``)."""
        raw = {k: dict(v) if isinstance(v, Mapping) else v for k, v in self.raw.items()}
        raw.setdefault("search", {})["space"] = space
        return parse_search_config(raw)


# --- parsing --------------------------------------------------------------------------------


def _table(raw: Mapping[str, Any], name: str, where: str) -> dict[str, Any]:
    value = raw.get(name, {})
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}{name} must be a table, got {value!r}")
    return dict(value)


def _number(table: Mapping[str, Any], key: str, where: str, default: float) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where} {key} must be a finite number, got {value!r}")
    return float(value)


def _int(table: Mapping[str, Any], key: str, where: str, default: int, low: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{where} {key} must be an integer >= {low}, got {value!r}")
    return value


def _choice(table: Mapping[str, Any], key: str, where: str, default: str,
            valid: Sequence[str]) -> str:
    value = table.get(key, default)
    if value not in valid:
        raise ValueError(f"{where} {key} {value!r} unknown; valid: {sorted(valid)}")
    return str(value)


def _weights(value: Any, where: str) -> dict[str, float]:
    if not isinstance(value, Mapping) or not value:
        raise ValueError(f"{where} must be a non-empty table of <task> = <number>, got {value!r}")
    out = {}
    for task, w in value.items():
        if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w):
            raise ValueError(f"{where} {task} must be a finite number, got {w!r}")
        out[str(task)] = float(w)
    return out


def _box(table: Mapping[str, Any], where: str, keys: Sequence[str], low: float) -> BoxSection:
    refuse_unknown(table, where, keys)
    pinned = table.get("pinned")
    if pinned is not None and not isinstance(pinned, str):
        raise ValueError(f"{where} pinned must be a task name, got {pinned!r}")
    box = BoxSection(
        pinned=pinned,
        low=_number(table, "low", where, low),
        high=_number(table, "high", where, 4.0),
        control=_weights(table["control"], f"{where} control") if "control" in table else None,
        rounds=_int(table, "rounds", where, 4, 1),
        population=_int(table, "population", where, 16, 4),
        elite_fraction=_number(table, "elite_fraction", where, 0.25),
    )
    if not box.low < box.high:
        raise ValueError(f"{where} needs low < high, got low={box.low} high={box.high}")
    if not 0 < box.elite_fraction <= 1:
        raise ValueError(f"{where} elite_fraction must be in (0, 1], got {box.elite_fraction}")
    return box


def _examination(value: Any) -> tuple[float, ...] | None:
    """``[data] examination = [1, 0.6, 0.4]``: one probability in (0, 1] per slot."""
    if value is None:
        return None
    ok = (isinstance(value, list) and value
          and all(isinstance(x, int | float) and not isinstance(x, bool) and 0 < x <= 1
                  for x in value))
    if not ok:
        raise ValueError(f"[data] examination must be a list of one probability in (0, 1] per "
                         f"slot, e.g. [1, 0.6, 0.4]; got {value!r}")
    return tuple(float(x) for x in value)


def _path(value: Any, where: str, base: Path | None) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where} must be a file path (a string), got {value!r}")
    path = Path(value).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    return str(path.resolve())


def _splits(value: Any) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise ValueError(f"[data] splits must be a table of <part> = <fraction>, got {value!r}")
    splits = {str(k): float(v) for k, v in value.items()
              if isinstance(v, int | float) and not isinstance(v, bool)}
    if len(splits) != len(value):
        raise ValueError(f"[data] splits fractions must be numbers, got {dict(value)}")
    missing = [p for p in (TRAIN, VALID, SEARCH, HOLDOUT) if p not in splits]
    if missing:
        raise ValueError(f"[data] splits lacks part(s) {missing}; need train, valid, search "
                         f"and holdout, got {splits}")
    if any(f <= 0 for f in splits.values()) or sum(splits.values()) > 1 + 1e-9:
        raise ValueError(f"[data] splits fractions must be > 0 and sum to <= 1, got {splits}")
    return splits


def _ranker(table: Mapping[str, Any], base: Path | None) -> tuple[RankerSection, dict[str, Any]]:
    where = "[ranker]"
    refuse_unknown(table, where, _RANKER_KEYS)
    names = table.get("tasks")
    if (not isinstance(names, list | tuple) or len(names) < 2
            or not all(isinstance(t, str) for t in names)):
        raise ValueError(f"{where} tasks must be a list of at least 2 task names (label "
                         f"columns of the log), got {names!r}")
    spaces = _table(table, "sample_spaces", "[ranker] ")
    unknown = [t for t in spaces if t not in names]
    if unknown:
        raise ValueError(f"[ranker] sample_spaces names task(s) {unknown} not in tasks "
                         f"{list(names)}")
    try:
        tasks = tuple(TaskSpec(t, spaces.get(t)) for t in names)
        validate_tasks(list(tasks))
    except ValueError as err:
        raise ValueError(f"[ranker] tasks: {err}") from None
    model_table = _table(table, "model", "[ranker] ")
    if not model_table:
        model_table = {"kind": "mmoe"}
    try:
        model = parse_model_table(model_table)
        train = parse_train_table(_table(table, "train", "[ranker] "))
    except ValueError as err:
        raise ValueError(f"[ranker] {err}") from None
    init = _choice(table, "init", where, "scratch", INITS)
    checkpoint = None
    if init == "warm":
        if "base_checkpoint" not in table:
            raise ValueError("[ranker] init = \"warm\" needs base_checkpoint = <a ranker.pt>")
        checkpoint = _path(table["base_checkpoint"], "[ranker] base_checkpoint", base)
    elif "base_checkpoint" in table:
        raise ValueError("[ranker] base_checkpoint is only read with init = \"warm\"")
    cache = _path(table["cache"], "[ranker] cache", base) if "cache" in table else None
    section = RankerSection(tasks, model, train, init, checkpoint,
                            _int(table, "steps", where, 200, 1), cache)
    resolved = dict(table)
    resolved["model"] = model_table
    if checkpoint is not None:
        resolved["base_checkpoint"] = checkpoint
    if cache is not None:
        resolved["cache"] = cache
    return section, resolved


def parse_search_config(raw: Mapping[str, Any], base: Path | None = None) -> SearchConfig:
    """Build and check a :class:`SearchConfig` from parsed TOML.

    Args:
        raw: ``tomllib`` output (or the ``raw`` a study stored).
        base: folder relative paths are taken from (None: the working directory).

    Raises:
        ValueError: an unknown table or key, a missing or bad value; the message names the
            table, the key and what is valid.

    Example:
        >>> cfg = parse_search_config({"data": {"logs": "/d/logs.parquet",
        ...                                     "scores": "/d/scores.parquet"},
        ...                            "objective": {"click": 1.0}})
        >>> cfg.space, cfg.splits["search"]
        ('fusion', 0.25)
    """
    refuse_unknown(raw, "the file", _TABLES)
    data = _table(raw, "data", "")
    refuse_unknown(data, "[data]", _DATA_KEYS)
    if "logs" not in data:
        raise ValueError("[data] needs logs = <the logged traffic, Parquet or CSV>")
    logs = _path(data["logs"], "[data] logs", base)
    scores = _path(data["scores"], "[data] scores", base) if "scores" in data else None
    splits = _splits(data.get("splits", DEFAULT_SPLITS))
    split_seed = _int(data, "split_seed", "[data]", 0, 0)
    examination = _examination(data.get("examination"))
    if "objective" not in raw:
        raise ValueError("the file needs an [objective] table of <task> = <weight>")
    objective = _weights(raw["objective"], "[objective]")

    search = _table(raw, "search", "")
    refuse_unknown(search, "[search]", _SEARCH_KEYS)
    where = "[search]"
    space = _choice(search, "space", where, "fusion", SPACES)
    estimator = _choice(search, "estimator", where, "snips", sorted(ESTIMATORS))
    formula = _choice(search, "formula", where, "multiplicative", sorted(FUSIONS))
    interval = _choice(search, "interval", where, "bootstrap", INTERVALS)
    guardrails = (_weights(search["guardrails"], "[search] guardrails")
                  if "guardrails" in search else {})
    fusion = _box(_table(search, "fusion", "[search] "), "[search.fusion]", _FUSION_KEYS, 0.0)
    loss = _box(_table(search, "loss", "[search] "), "[search.loss]", _LOSS_KEYS, 0.1)

    ranker, ranker_raw = None, None
    if "ranker" in raw:
        ranker, ranker_raw = _ranker(_table(raw, "ranker", ""), base)
    if ranker is None and (space != "fusion" or scores is None):
        need = "a [ranker] table" + ("" if space != "fusion" else " or [data] scores")
        raise ValueError(f"space {space!r} trains the ranker: the file needs {need}")
    if ranker is not None and loss.pinned is not None and loss.pinned not in ranker.task_names:
        raise ValueError(f"[search.loss] pinned {loss.pinned!r} is not a ranker task; valid: "
                         f"{list(ranker.task_names)}")
    resolved = {"data": {**data, "logs": logs, "splits": splits},
                "objective": objective, "search": search}
    if scores is not None:
        resolved["data"]["scores"] = scores
    if ranker_raw is not None:
        resolved["ranker"] = ranker_raw
    return SearchConfig(
        raw=resolved, logs=logs, objective=objective, scores=scores, splits=splits,
        split_seed=split_seed, space=space, estimator=estimator, formula=formula,
        interval=interval, examination=examination,
        rounds=_int(search, "rounds", where, 3, 1),
        population=_int(search, "population", where, 8, 4),
        elite_fraction=_number(search, "elite_fraction", where, 0.25),
        seed=_int(search, "seed", where, 0, 0), guardrails=guardrails,
        n_bootstrap=_int(search, "n_bootstrap", where, 200, 50),
        fusion=fusion, loss=loss, ranker=ranker,
    )


def load_search_config(path: str | os.PathLike[str]) -> SearchConfig:
    """Read and check a search file; relative paths are taken from its folder.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not TOML, or a bad setting; the message starts with the file name.
    """
    path = Path(path)
    raw = read_toml(path, "search config file")
    try:
        return parse_search_config(raw, path.parent.resolve())
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
