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
    estimator_params = {}        # its hyperparameters, e.g. { clip = 50 } for clipped_ips
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

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, StrictInt, StrictStr, model_validator

from ranker.config_file import ModelSection, parse_model_table, parse_train_table, read_toml
from ranker.tasks import TaskSpec, validate_tasks
from ranker.toml_schema import Finite, Number, Table, choice, validate
from ranker.train import TrainConfig
from simulator.estimators import ESTIMATORS
from simulator.fusion import FUSIONS
from simulator.intervals import INTERVALS
from tuner.evaluation.loss_study import SPACES
from tuner.evaluation.search_data import HOLDOUT, SEARCH, parse_estimator_params
from tuner.weights_text import Numbers, check_task_numbers

__all__ = [
    "INITS",
    "SPACES",
    "BoxSection",
    "RankerSection",
    "SearchConfig",
    "load_search_config",
    "parse_search_config",
]

INITS = ("scratch", "warm")
"""How a loss-weight trial's ranker starts: new weights, or a base checkpoint."""
TRAIN, VALID = "train", "valid"
DEFAULT_SPLITS = {TRAIN: 0.4, VALID: 0.1, SEARCH: 0.25, HOLDOUT: 0.25}


# --- the file's tables (pydantic: unknown keys refused, every message names the key) -------

Path_ = Annotated[StrictStr, Field(min_length=1)]
NonNegativeInt = Annotated[StrictInt, Field(ge=0)]
PositiveInt = Annotated[StrictInt, Field(ge=1)]
Population = Annotated[StrictInt, Field(ge=4)]
EliteFraction = Annotated[Finite, Field(gt=0, le=1)]
Weights = Annotated[dict[StrictStr, Finite], Field(min_length=1)]


class _DataTable(Table):
    logs: Path_
    scores: Path_ | None = None
    splits: dict[StrictStr, Finite] = dict(DEFAULT_SPLITS)
    split_seed: NonNegativeInt = 0
    examination: Annotated[list[Annotated[Finite, Field(gt=0, le=1)]],
                           Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _parts(self) -> _DataTable:
        missing = [p for p in (TRAIN, VALID, SEARCH, HOLDOUT) if p not in self.splits]
        if missing:
            raise ValueError(f"splits lacks part(s) {missing}; need train, valid, search and "
                             f"holdout, got {self.splits}")
        if any(f <= 0 for f in self.splits.values()) or sum(self.splits.values()) > 1 + 1e-9:
            raise ValueError(f"splits fractions must be > 0 and sum to <= 1, got {self.splits}")
        return self


class _LossBoxTable(Table):
    pinned: StrictStr | None = None
    low: Finite = 0.1
    high: Finite = 4.0

    @model_validator(mode="after")
    def _box(self) -> _LossBoxTable:
        if not self.low < self.high:
            raise ValueError(f"needs low < high, got low={self.low:g} high={self.high:g}")
        return self


class _FusionBoxTable(_LossBoxTable):
    low: Finite = 0.0
    control: Weights | None = None
    rounds: PositiveInt = 4
    population: Population = 16
    elite_fraction: EliteFraction = 0.25


class _SearchTable(Table):
    space: choice(SPACES) = "fusion"  # type: ignore[valid-type]
    estimator: choice(ESTIMATORS) = "snips"  # type: ignore[valid-type]
    estimator_params: dict[StrictStr, Number] = {}
    formula: choice(FUSIONS) = "multiplicative"  # type: ignore[valid-type]
    interval: choice(INTERVALS) = "bootstrap"  # type: ignore[valid-type]
    rounds: PositiveInt = 3
    population: Population = 8
    elite_fraction: EliteFraction = 0.25
    seed: NonNegativeInt = 0
    guardrails: dict[StrictStr, Finite] = {}
    n_bootstrap: Annotated[StrictInt, Field(ge=50)] = 200
    fusion: _FusionBoxTable = _FusionBoxTable()
    loss: _LossBoxTable = _LossBoxTable()


class _RankerTable(Table):
    tasks: Annotated[list[StrictStr], Field(min_length=2)]
    sample_spaces: dict[StrictStr, StrictStr] = {}
    init: choice(INITS) = "scratch"  # type: ignore[valid-type]
    base_checkpoint: Path_ | None = None
    steps: PositiveInt = 200
    cache: Path_ | None = None
    model: dict[StrictStr, Any] = {}
    train: dict[StrictStr, Any] = {}

    @model_validator(mode="after")
    def _init(self) -> _RankerTable:
        unknown = [t for t in self.sample_spaces if t not in self.tasks]
        if unknown:
            raise ValueError(f"sample_spaces names task(s) {unknown} not in tasks {self.tasks}")
        if self.init == "warm" and self.base_checkpoint is None:
            raise ValueError('init = "warm" needs base_checkpoint = <a ranker.pt>')
        if self.init != "warm" and self.base_checkpoint is not None:
            raise ValueError('base_checkpoint is only read with init = "warm"')
        return self


class _SearchFile(Table):
    data: _DataTable
    objective: Weights
    search: _SearchTable = _SearchTable()
    ranker: _RankerTable | None = None


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
        estimator_params: the estimator's hyperparameters (``{clip = 50}``).
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
    estimator_params: Mapping[str, float] = field(default_factory=dict)

    def with_space(self, space: str) -> SearchConfig:
        """The same file with another ``[search] space`` (``--space``)."""
        raw = {k: dict(v) if isinstance(v, Mapping) else v for k, v in self.raw.items()}
        raw.setdefault("search", {})["space"] = space
        return parse_search_config(raw)


# --- parsing --------------------------------------------------------------------------------


def _path(value: str, base: Path | None) -> str:
    path = Path(value).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    return str(path.resolve())


def _box(table: _LossBoxTable) -> BoxSection:
    values: dict[str, Any] = {k: dict(v) if isinstance(v, Mapping) else v
                              for k, v in table.model_dump().items()}
    return BoxSection(**values)


def _ranker(table: _RankerTable, raw: Mapping[str, Any], base: Path | None
            ) -> tuple[RankerSection, dict[str, Any]]:
    try:
        tasks = tuple(TaskSpec(t, table.sample_spaces.get(t)) for t in table.tasks)
        validate_tasks(list(tasks))
    except ValueError as err:
        raise ValueError(f"[ranker] tasks: {err}") from None
    model_table = table.model or {"kind": "mmoe"}
    model = parse_model_table(model_table, "[ranker.model]")
    train = parse_train_table(table.train, "[ranker.train]")
    checkpoint = (None if table.base_checkpoint is None
                  else _path(table.base_checkpoint, base))
    cache = None if table.cache is None else _path(table.cache, base)
    section = RankerSection(tasks, model, train, table.init, checkpoint, table.steps, cache)
    resolved = dict(raw)
    resolved["model"] = dict(model_table)
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
            table, the key and what is valid (the first problem, and how many others).

    Example:
        >>> cfg = parse_search_config({"data": {"logs": "/d/logs.parquet",
        ...                                     "scores": "/d/scores.parquet"},
        ...                            "objective": {"click": 1.0}})
        >>> cfg.space, cfg.splits["search"]
        ('fusion', 0.25)
    """
    if isinstance(raw, Mapping) and "objective" not in raw:
        raise ValueError("the file needs an [objective] table of <task> = <weight>")
    tables = validate(_SearchFile, raw)
    data, search = tables.data, tables.search
    logs = _path(data.logs, base)
    scores = None if data.scores is None else _path(data.scores, base)
    objective = check_task_numbers(tables.objective, "[objective]",
                                   numbers=Numbers(not_all_zero=True), value="weight")
    estimator_params = parse_estimator_params(search.estimator_params, search.estimator,
                                              "[search] estimator_params")
    fusion, loss = _box(search.fusion), _box(search.loss)

    ranker, ranker_raw = None, None
    if tables.ranker is not None:
        ranker, ranker_raw = _ranker(tables.ranker, raw["ranker"], base)
    space = search.space
    if ranker is None and (space != "fusion" or scores is None):
        need = "a [ranker] table" + ("" if space != "fusion" else " or [data] scores")
        raise ValueError(f"space {space!r} trains the ranker: the file needs {need}")
    if ranker is not None and loss.pinned is not None and loss.pinned not in ranker.task_names:
        raise ValueError(f"[search.loss] pinned {loss.pinned!r} is not a ranker task; valid: "
                         f"{list(ranker.task_names)}")
    splits = dict(data.splits)
    resolved: dict[str, Any] = {"data": {**raw["data"], "logs": logs, "splits": splits},
                                "objective": objective, "search": dict(raw.get("search", {}))}
    if scores is not None:
        resolved["data"]["scores"] = scores
    if ranker_raw is not None:
        resolved["ranker"] = ranker_raw
    return SearchConfig(
        raw=resolved, logs=logs, objective=objective, scores=scores, splits=splits,
        split_seed=data.split_seed, space=space, estimator=search.estimator,
        estimator_params=estimator_params, formula=search.formula, interval=search.interval,
        examination=None if data.examination is None else tuple(data.examination),
        rounds=search.rounds, population=search.population,
        elite_fraction=search.elite_fraction, seed=search.seed,
        guardrails=dict(search.guardrails), n_bootstrap=search.n_bootstrap,
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
