"""The ranker's run configuration: one typed tree loaded from a TOML file.

A run file has four tables; every key is checked (pydantic models of
:mod:`ranker.toml_schema`), unknown keys are refused and each error names the
file, the key and what would be valid::

    [model]                 # kind + the fields of that kind's config class
    kind = "ple"            # a key of ranker.BUILDERS
    expert_kinds = ["mlp", "dcn"]
    head = "esmm"

    [balancer]              # name + options of ranker.BALANCERS[name].build
    name = "static"
    options = { weights = { click = 1.0, long_view = 2.0 } }

    [train]                 # TrainConfig fields (static weights go in [balancer])
    epochs = 3

    [data]
    source = "kuairand"     # the only source so far
    path = "../shared/data/kuairand-pure"   # optional; relative to the file's folder
    tasks = ["click", "long_view", "like"]  # optional; names of ranker.kuairand.TASKS
    max_train_rows = 50000  # optional; a seeded subsample of the train days
    history_len = 10        # optional; clicks per history sequence feature

Only ``[model] kind`` is required; a missing table or key takes the defaults of
:class:`~ranker.MMoEConfig` (etc.), :class:`~ranker.TrainConfig`, the static
balancer with weight 1 per task, and KuaiRand's default tasks.

Example:
    >>> cfg = parse_run_config({"model": {"kind": "mmoe", "n_experts": 2}})
    >>> cfg.model.kind, cfg.model.config.n_experts, cfg.balancer.name, cfg.data.tasks
    ('mmoe', 2, 'static', ('click', 'long_view', 'like', 'profile_enter'))
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import Field, StrictInt, StrictStr

from ranker.balancers import BALANCERS, BaseBalancer
from ranker.configs import PartsConfig
from ranker.features import NumericFeature
from ranker.kuairand import DEFAULT_TASKS, TASKS
from ranker.model import BUILDERS, build_model
from ranker.tasks import TaskSpec, validate_tasks
from ranker.toml_schema import Table, choice, dataclass_table, validate
from ranker.train import TrainConfig

__all__ = [
    "DATA_SOURCES",
    "BalancerSection",
    "DataSection",
    "ModelSection",
    "RankerRunConfig",
    "load_run_config",
    "parse_model_table",
    "parse_run_config",
    "parse_train_table",
    "read_toml",
]

DATA_SOURCES = ("kuairand",)
"""Valid ``[data] source`` values."""

_TRAIN_KEYS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name != "loss_weights")
PositiveInt = Annotated[StrictInt, Field(ge=1)]


class _BalancerTable(Table):
    name: choice(BALANCERS) = "static"  # type: ignore[valid-type]
    options: dict[StrictStr, Any] = {}


class _DataTable(Table):
    source: choice(DATA_SOURCES) = "kuairand"  # type: ignore[valid-type]
    path: StrictStr | None = None
    tasks: Annotated[list[StrictStr], Field(min_length=1)] = list(DEFAULT_TASKS)
    max_train_rows: PositiveInt | None = None
    history_len: PositiveInt = 10


class _RunFile(Table):
    """A run file's tables; ``[model]`` and ``[train]`` are checked by their own models."""

    model: dict[StrictStr, Any]
    balancer: _BalancerTable = _BalancerTable()
    train: dict[StrictStr, Any] = {}
    data: _DataTable = _DataTable()


@functools.cache
def _model_table(kind: str) -> type[Table]:
    """The ``[model]`` table of a kind: ``kind`` and the fields of its config class."""
    cls = BUILDERS[kind][0]
    return dataclass_table(cls, f"{cls.__name__}Table", extra={"kind": (StrictStr, ...)})


_TRAIN_TABLE = dataclass_table(TrainConfig, "TrainTable", exclude=("loss_weights",))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _frozen(value: Any) -> Any:
    """Lists -> tuples and tables -> read-only mappings, recursively (TOML has no tuples)."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


def _thawed(value: Any) -> Any:
    """The inverse of :func:`_frozen`, for keyword arguments and JSON."""
    if isinstance(value, Mapping):
        return {k: _thawed(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thawed(v) for v in value]
    return value


def _config_error(where: str, err: Exception) -> ValueError:
    """Re-word a config class's error to name the file's key (``MMoEConfig.x``: ``[model] x``)."""
    text = str(err)
    for prefix in ("TrainConfig.", "MMoEConfig.", "SharedBottomConfig.", "CGCConfig.",
                   "PLEConfig."):
        text = text.replace(prefix, f"{where} ")
    return ValueError(text if text.startswith(where) else f"{where}: {text}")


@dataclass(frozen=True)
class ModelSection:
    """``[model]``: the architecture and its hyperparameters.

    Args:
        kind: A key of :data:`ranker.BUILDERS`.
        config: That kind's config dataclass (:class:`~ranker.MMoEConfig`...).
    """

    kind: str
    config: PartsConfig

    def __post_init__(self) -> None:
        if self.kind not in BUILDERS:
            raise ValueError(f"[model] kind {self.kind!r} unknown; valid: {sorted(BUILDERS)}")
        if type(self.config) is not BUILDERS[self.kind][0]:
            raise ValueError(
                f"[model] kind {self.kind!r} needs a {BUILDERS[self.kind][0].__name__}, "
                f"got {type(self.config).__name__}"
            )


@dataclass(frozen=True)
class BalancerSection:
    """``[balancer]``: how task losses make one step.

    Args:
        name: A key of :data:`ranker.BALANCERS`.
        options: Keyword options of that class's ``build`` (read-only).
    """

    name: str = "static"
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if self.name not in BALANCERS:
            raise ValueError(f"[balancer] name {self.name!r} unknown; valid: {sorted(BALANCERS)}")
        object.__setattr__(self, "options", _frozen(dict(self.options)))

    def build(self, tasks: Sequence[str]) -> BaseBalancer:
        """A fresh balancer for ``tasks`` (learned weights start anew each call).

        Raises:
            ValueError: An option is unknown or invalid (names the valid ones).
        """
        cls = BALANCERS[self.name]
        options = _thawed(self.options)
        try:
            return cls.build(tasks, **options)
        except TypeError as err:  # an option the constructor does not take
            params = inspect.signature(cls).parameters
            valid = [p for p in params if p != "tasks"]
            raise ValueError(
                f"[balancer] options {sorted(options)} do not fit balancer {self.name!r} "
                f"({err}); valid options: {valid}"
            ) from None
        except ValueError as err:
            raise ValueError(f"[balancer] options of {self.name!r}: {err}") from None


@dataclass(frozen=True)
class DataSection:
    """``[data]``: where the rows come from.

    Args:
        source: One of :data:`DATA_SOURCES`.
        path: Data folder (None: the loader's default, see :func:`ranker.kuairand.resolve_path`).
        tasks: Task names, keys of :data:`ranker.kuairand.TASKS`; a conditional task
            needs its parent listed.
        max_train_rows: Train on a seeded subsample of this many train-day rows (None: all).
        history_len: Last clicks kept in the history sequence features (``L``).
    """

    source: str = "kuairand"
    path: str | None = None
    tasks: tuple[str, ...] = DEFAULT_TASKS
    max_train_rows: int | None = None
    history_len: int = 10

    def __post_init__(self) -> None:
        if self.source not in DATA_SOURCES:
            raise ValueError(f"[data] source {self.source!r} unknown; valid: {list(DATA_SOURCES)}")
        if self.path is not None and not isinstance(self.path, str):
            raise ValueError(f"[data] path must be a string, got {self.path!r}")
        tasks = self.tasks
        if isinstance(tasks, str) or not isinstance(tasks, Sequence) or not tasks:
            raise ValueError(f"[data] tasks must be a non-empty list of names, got {tasks!r}")
        unknown = [t for t in tasks if t not in TASKS]
        if unknown:
            raise ValueError(f"[data] tasks {unknown} unknown; valid: {sorted(TASKS)}")
        if len(set(tasks)) != len(tasks):
            raise ValueError(f"[data] tasks must be distinct, got {list(tasks)}")
        try:
            validate_tasks([TaskSpec(t, TASKS[t][1]) for t in tasks])
        except ValueError as err:
            raise ValueError(f"[data] tasks: {err}") from None
        object.__setattr__(self, "tasks", tuple(tasks))
        cap = self.max_train_rows
        if cap is not None and (not _is_int(cap) or cap < 1):
            raise ValueError(f"[data] max_train_rows must be an int >= 1, got {cap!r}")
        if not _is_int(self.history_len) or self.history_len < 1:
            raise ValueError(f"[data] history_len must be an int >= 1, got {self.history_len!r}")

    def task_specs(self) -> tuple[TaskSpec, ...]:
        """The tasks with their KuaiRand sample spaces."""
        return tuple(TaskSpec(t, TASKS[t][1]) for t in self.tasks)


@dataclass(frozen=True)
class RankerRunConfig:
    """One ranker run: model, balancer, training and data settings.

    Construction checks the parts against each other: the head and tower
    transfers must fit the tasks, the balancer's options must build.

    Args:
        model: ``[model]``.
        balancer: ``[balancer]``.
        train: ``[train]``, a :class:`~ranker.TrainConfig` without ``loss_weights``.
        data: ``[data]``.
    """

    model: ModelSection
    balancer: BalancerSection = field(default_factory=BalancerSection)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataSection = field(default_factory=DataSection)

    def __post_init__(self) -> None:
        if self.train.loss_weights is not None:
            raise ValueError(
                "static loss weights belong in [balancer]: name = \"static\", "
                "options = { weights = {...} }; [train] has no loss_weights"
            )
        specs = self.data.task_specs()
        try:  # a one-feature model is enough to check head and transfers against the tasks
            build_model(self.model.kind, [NumericFeature("x")], specs, self.model.config)
        except ValueError as err:
            raise ValueError(f"[model] does not fit [data] tasks {list(self.data.tasks)}: "
                             f"{err}") from None
        self.balancer.build(self.data.tasks)

    def to_dict(self) -> dict[str, Any]:
        """The tree as TOML-like plain values (what :func:`parse_run_config` reads back).

        Example:
            >>> cfg = parse_run_config({"model": {"kind": "cgc"}})
            >>> parse_run_config(cfg.to_dict()) == cfg
            True
        """
        model = {"kind": self.model.kind, **_thawed(dataclasses.asdict(self.model.config))}
        train = {k: getattr(self.train, k) for k in _TRAIN_KEYS}
        data: dict[str, Any] = {"source": self.data.source, "tasks": list(self.data.tasks)}
        if self.data.path is not None:
            data["path"] = self.data.path
        if self.data.max_train_rows is not None:
            data["max_train_rows"] = self.data.max_train_rows
        data["history_len"] = self.data.history_len
        balancer = {"name": self.balancer.name, "options": _thawed(self.balancer.options)}
        return {"model": model, "balancer": balancer, "train": train, "data": data}


def _model_section(table: Mapping[str, Any], where: str = "[model]") -> ModelSection:
    if "kind" not in table:
        raise ValueError(f"{where} needs kind = one of {sorted(BUILDERS)}")
    kind = table["kind"]
    if not isinstance(kind, str) or kind not in BUILDERS:
        raise ValueError(f"{where} kind {kind!r} unknown; valid: {sorted(BUILDERS)}")
    checked = validate(_model_table(kind), table, where)
    options = checked.model_dump(exclude={"kind"}, exclude_unset=True)
    try:
        config = BUILDERS[kind][0](**{k: _frozen(v) for k, v in options.items()})
    except (ValueError, TypeError) as err:
        raise _config_error(where, err) from None
    return ModelSection(kind, config)


def _train_config(table: Mapping[str, Any], where: str = "[train]") -> TrainConfig:
    if "loss_weights" in table:
        raise ValueError(
            f"{where} loss_weights is not read from files; write [balancer] name = \"static\" "
            "with options = { weights = { <task> = <weight>, ... } }"
        )
    checked = validate(_TRAIN_TABLE, table, where)
    try:
        return TrainConfig(**checked.model_dump(exclude_unset=True))
    except (ValueError, TypeError) as err:
        raise _config_error(where, err) from None


def parse_model_table(table: Mapping[str, Any], where: str = "[model]") -> ModelSection:
    """A ``[model]`` table alone, checked as in a run file (for callers with their own data).

    ``where`` names the table in messages (``[ranker.model]`` in a search file).

    Example:
        >>> parse_model_table({"kind": "ple", "n_levels": 1}).config.n_levels
        1
    """
    return _model_section(table, where)


def parse_train_table(table: Mapping[str, Any], where: str = "[train]") -> TrainConfig:
    """A ``[train]`` table alone, checked as in a run file (no ``loss_weights``).

    Example:
        >>> parse_train_table({"epochs": 2}).epochs
        2
    """
    return _train_config(table, where)


def parse_run_config(raw: Mapping[str, Any]) -> RankerRunConfig:
    """Build the typed tree from parsed TOML (a dict of tables).

    Args:
        raw: ``tomllib.load`` output, or the same shape of plain values.

    Raises:
        ValueError: An unknown table or key, a missing ``[model] kind``, a bad value;
            the message names the key and what is valid.

    Example:
        >>> parse_run_config({"model": {"kind": "mmoe", "n_expert": 2}})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: [model] has unknown key(s) ['n_expert']; valid: [...]
    """
    if isinstance(raw, Mapping) and "model" not in raw:
        raise ValueError(f"the file needs a [model] table with kind = one of {sorted(BUILDERS)}")
    tables = validate(_RunFile, raw)
    model = _model_section(tables.model)
    balancer = BalancerSection(tables.balancer.name, tables.balancer.options)
    train = _train_config(tables.train)
    data = DataSection(**{k: _frozen(v) for k, v in tables.data.model_dump().items()})
    return RankerRunConfig(model, balancer, train, data)


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """The tables of a TOML file.

    Raises:
        FileNotFoundError: no such file (the message says ``what`` it should be).
        ValueError: not TOML (the message starts with the file name).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid TOML: {err}") from None


def load_run_config(path: str | Path) -> RankerRunConfig:
    """Read and validate a run file; a relative ``[data] path`` is taken from the file's folder.

    Args:
        path: A TOML file.

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: Not TOML, or a bad setting; the message starts with the file name.

    Example:
        >>> cfg = load_run_config("configs/kuairand_mmoe.toml")  # doctest: +SKIP
    """
    path = Path(path)
    raw = read_toml(path, "config file")
    try:
        config = parse_run_config(raw)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    data_path = config.data.path
    if data_path is not None and not Path(data_path).expanduser().is_absolute():
        resolved = str((path.parent / Path(data_path).expanduser()).resolve())
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, path=resolved))
    return config
