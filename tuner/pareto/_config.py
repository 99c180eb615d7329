"""Settings of a Pareto search: which metrics, in which direction, searched how."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tuner.pareto._front import DIRECTIONS
from tuner.strategies import SCALARISATIONS

__all__ = ["MAX_METRICS", "PARETO_STRATEGIES", "ParetoConfig", "parse_metrics"]

PARETO_STRATEGIES = ("nsga2", "cem")
MAX_METRICS = 3


def parse_metrics(text: str, valid: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``"click,like,hate:min"`` -> ``(("click", "like", "hate"), directions)``.

    A metric is maximised unless it ends in ``:min``.

    Raises:
        ValueError: fewer than 2 or more than 3 metrics, a repeat, an unknown metric or a
            bad direction, naming the valid metrics.
    """
    names: list[str] = []
    directions: list[str] = []
    for term in filter(None, (t.strip() for t in text.split(","))):
        name, _, how = term.partition(":")
        name, how = name.strip(), (how.strip() or "max")
        if how not in ("max", "min"):
            raise ValueError(f"--metrics term {term!r}: the direction must be ':max' or ':min'; "
                             f"valid: {list(valid)}")
        names.append(name)
        directions.append("maximize" if how == "max" else "minimize")
    if not 2 <= len(names) <= MAX_METRICS:
        raise ValueError(f"--metrics needs 2 or {MAX_METRICS} metrics, got {len(names)} "
                         f"{names}; valid: {list(valid)}")
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise ValueError(f"--metrics names unknown metric(s) {unknown}; valid: {list(valid)} "
                         "(the log's tasks)")
    if len(set(names)) != len(names):
        raise ValueError(f"--metrics repeats a metric: {names}; valid: {list(valid)}")
    return tuple(names), tuple(directions)


@dataclass(frozen=True)
class ParetoConfig:
    """Settings of a Pareto search.

    Args:
        metrics: the 2 or 3 metrics (log tasks) of the front.
        directions: per metric ``"maximize"`` or ``"minimize"``.
        strategy: ``"nsga2"`` or ``"cem"`` (CEM over scalarisations).
        population: trials per generation, all scalarisations together.
        n_scalarisations: CEM only: directions on the simplex, one CEM each; each CEM
            draws ``population / n_scalarisations`` points a generation.
        scalarisation: CEM only: ``"linear"`` or ``"chebyshev"``.
        elite_fraction: CEM only: share of each CEM's points refitted to.
    """

    metrics: tuple[str, ...]
    directions: tuple[str, ...]
    strategy: str = "nsga2"
    population: int = 32
    n_scalarisations: int = 4
    scalarisation: str = "linear"
    elite_fraction: float = 0.25

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", tuple(self.metrics))
        object.__setattr__(self, "directions", tuple(self.directions))
        k = len(self.metrics)
        if not 2 <= k <= MAX_METRICS or len(set(self.metrics)) != k:
            raise ValueError(f"a Pareto front needs 2 or {MAX_METRICS} distinct metrics, got "
                             f"{list(self.metrics)}")
        if len(self.directions) != k or any(d not in DIRECTIONS for d in self.directions):
            raise ValueError(f"directions {list(self.directions)}: need one of "
                             f"{list(DIRECTIONS)} per metric")
        if self.strategy not in PARETO_STRATEGIES:
            raise ValueError(f"unknown Pareto strategy {self.strategy!r}; valid: "
                             f"{list(PARETO_STRATEGIES)}")
        if self.scalarisation not in SCALARISATIONS:
            raise ValueError(f"unknown scalarisation {self.scalarisation!r}; valid: "
                             f"{list(SCALARISATIONS)}")
        if self.population < 2:
            raise ValueError(f"population is {self.population}; need >= 2")
        if self.strategy == "cem":
            s = self.n_scalarisations
            if s < k:
                raise ValueError(f"--scalarisations is {s}; need at least one per metric ({k})")
            if self.population % s or self.population // s < 2:
                raise ValueError(f"--population {self.population} must be a multiple of "
                                 f"--scalarisations {s} with at least 2 points per CEM")

    @property
    def signs(self) -> np.ndarray:
        """``[K]``: +1 for a maximised metric, -1 for a minimised one."""
        return np.array([1.0 if d == "maximize" else -1.0 for d in self.directions])

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["metrics"], d["directions"] = list(self.metrics), list(self.directions)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ParetoConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
