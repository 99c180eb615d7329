"""The settings of a new ``search run`` / ``search pareto`` study, as one frozen object.

A command's study options (``--logs --scores --objective --estimator ... --strategy
--population``) arrive as text; :class:`NewStudy` holds them, turns them into the
:class:`~tuner.evaluation.search_data.SearchSettings`, space and strategy config of a new
study (reading and checking the log and score table, so that nothing is created when they
do not fit), and checks them against an existing study, which keeps what it stored.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np

from simulator.fusion import make_fusion
from tuner.cli._study_options import parse_conditional, parse_examination, weights_option
from tuner.evaluation.guardrails import parse_guardrails
from tuner.evaluation.objective import parse_objective
from tuner.evaluation.search_data import (
    HOLDOUT,
    SEARCH,
    SearchSettings,
    Workspace,
    parse_estimator_params,
    resolve,
)
from tuner.space import FusionSpace
from tuner.strategies import STRATEGIES, make_config
from tuner.study import SearchSpec

__all__ = ["NEW_STUDY_OPTIONS", "NewStudy", "given_options"]


@dataclass(frozen=True)
class NewStudy:
    """What a command was told about the study it may create; ``None``: not given.

    Args:
        logs, scores: paths of the log and the score table.
        objective_text: ``<task>=<weight>,...``.
        estimator, formula, interval: names in the simulator's registries.
        pinned: task whose weight is 1 (default the first score task).
        low, high: the search box of the free weights.
        control_text: control weights ``<task>=<weight>,...`` (default all 1).
        conditional_text: ``<task>=<parent>,...`` score tasks conditional on another.
        holdout_fraction: share of requests held out from the search.
        guardrail_text: ``<metric>=<max drop>,...``.
        seed: seed of the split and of the strategy.
        strategy: name in :data:`tuner.strategies.STRATEGIES`.
        population: points per generation.
        elite_fraction: share of elites (CEM and steady CEM only).
        estimator_param_text: ``<name>=<number>`` hyperparameters of the estimator.
        examination_text: ``1,0.6,0.4``, the examination curve (a CSV log carries none).
        stream: read the log chunk by chunk even from one file (a folder always is).
    """

    logs: str | None = None
    scores: str | None = None
    objective_text: str | None = None
    estimator: str = "snips"
    formula: str = "multiplicative"
    interval: str = "bootstrap"
    pinned: str | None = None
    low: float = 0.0
    high: float = 4.0
    control_text: str | None = None
    conditional_text: str | None = None
    holdout_fraction: float = 0.5
    guardrail_text: str | None = None
    seed: int = 0
    strategy: str = "cem"
    population: int = 32
    elite_fraction: float | None = None
    estimator_param_text: tuple[str, ...] = ()
    examination_text: str | None = None
    stream: bool = False

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> NewStudy:
        """From a click command's parameters (the ones that are fields of this class)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in params.items() if k in names})

    def strategy_config(self) -> Any:
        """The config of :attr:`strategy` with :attr:`population` (and the elite fraction
        where the strategy has one)."""
        values: dict[str, Any] = {"population": self.population}
        if self.elite_fraction is not None:
            fields = {f.name for f in dataclasses.fields(STRATEGIES[self.strategy].config)}
            if "elite_fraction" not in fields:
                raise ValueError(f"--elite-fraction: strategy {self.strategy!r} has no elites; "
                                 "it applies to cem and steady-cem")
            values["elite_fraction"] = self.elite_fraction
        return make_config(self.strategy, values)

    def missing(self) -> list[str]:
        """The options a new study needs and lacks."""
        return [o for o, v in (("--logs", self.logs), ("--scores", self.scores),
                               ("--objective", self.objective_text)) if v is None]

    def build(self, default_objective: Callable[[tuple[str, ...]], dict[str, float]] | None
              = None) -> tuple[SearchSettings, FusionSpace, Workspace | Any]:
        """The settings and space of the new study, and its workspace, checked.

        The log and the score table are read and every split's replay is built, so a log or
        score table that does not fit is refused here, before any study exists.

        Args:
            default_objective: the objective when none was given, from the log's tasks (a
                Pareto study weighs its metrics); without it ``--objective`` is required.
        """
        from simulator.logs import LoggedTraffic
        from tuner.evaluation.scores import ScoreTable
        from tuner.evaluation.streamed import dataset_tasks, open_workspace

        missing = self.missing()
        if default_objective is not None:
            missing = [m for m in missing if m != "--objective"]
        if missing:
            raise ValueError(f"a new study needs {' '.join(missing)}")
        assert self.logs is not None and self.scores is not None
        streamed = self.stream or Path(self.logs).is_dir()
        if streamed:  # read chunk by chunk by the workspace's check(), never whole
            traffic, table_ = None, None
            log_tasks, tasks = dataset_tasks(self.logs, self.scores)
        else:
            traffic = LoggedTraffic.read(self.logs)
            table_ = ScoreTable.read(self.scores)
            log_tasks, tasks = traffic.tasks, table_.tasks
        conditional = parse_conditional(self.conditional_text, tasks)
        space = self.space(tasks)
        control = weights_option(self.control_text, space, self.formula, "--control")
        settings = SearchSettings(
            logs=resolve(self.logs), scores=resolve(self.scores),
            objective=(parse_objective(self.objective_text, log_tasks)
                       if self.objective_text is not None
                       else default_objective(log_tasks) if default_objective is not None
                       else {}),
            estimator=self.estimator, formula=self.formula,
            splits={SEARCH: 1 - self.holdout_fraction, HOLDOUT: self.holdout_fraction},
            split_seed=self.seed, conditional=conditional, control=control,
            data_fingerprint="" if traffic is None else traffic.fingerprint(),
            guardrails={g.metric: g.max_drop
                        for g in parse_guardrails(self.guardrail_text, log_tasks)},
            interval=self.interval,
            estimator_params=parse_estimator_params(self.estimator_param_text, self.estimator),
            examination=parse_examination(self.examination_text), stream=self.stream)
        ws = open_workspace(settings, traffic, table_)
        ws.check()
        return settings, space, ws

    def space(self, tasks: tuple[str, ...]) -> FusionSpace:
        """The search box over ``tasks`` (the score table's), its faults named by option.

        Raises:
            ValueError: a ``--pinned`` that is no score task, ``--low``/``--high`` that are
                not finite with low < high, or a ``--low`` the formula refuses (negative
                weights for the multiplicative one).
        """
        if self.pinned is not None and self.pinned not in tasks:
            raise ValueError(f"--pinned {self.pinned!r} is not a score task; valid: "
                             f"{', '.join(tasks)}")
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low >= self.high:
            raise ValueError(f"--low {self.low:g} --high {self.high:g}: the search box needs "
                             "finite bounds with --low < --high")
        pinned = self.pinned or tasks[0]
        corner = np.array([1.0 if t == pinned else self.low for t in tasks])
        try:
            make_fusion(self.formula).validate_weights(corner, tasks)
        except ValueError as err:
            raise ValueError(f"--low {self.low:g} is not a valid weight for --formula "
                             f"{self.formula}: {err}") from None
        return FusionSpace(tasks=tasks, pinned=pinned, low=self.low, high=self.high)

    def check_against(self, given: list[str], search: SearchSpec) -> None:
        """Refuse any option in ``given`` that differs from what the study stored.

        Raises:
            ValueError: naming the option, its value and the stored one.
        """
        stored = SearchSettings.from_dict(search.settings)
        space = search.space
        config = dataclasses.asdict(search.config)
        old: dict[str, Any] = {
            "logs": stored.logs, "scores": stored.scores,
            "objective_text": dict(stored.objective), "estimator": stored.estimator,
            "formula": stored.formula, "pinned": space.pinned, "interval": stored.interval,
            "low": space.low, "high": space.high,
            "control_text": None if stored.control is None else list(stored.control),
            "conditional_text": dict(stored.conditional),
            "guardrail_text": dict(stored.guardrails),
            "holdout_fraction": stored.splits[HOLDOUT], "seed": search.seed,
            "strategy": search.strategy, "population": search.population,
            "elite_fraction": config.get("elite_fraction"),
            "estimator_param_text": dict(stored.estimator_params),
            "examination_text": None if stored.examination is None else list(stored.examination),
            "stream": stored.stream,
        }
        for name in given:
            value = self._parsed(name, stored, space)
            if old[name] != value:
                option = "--" + name.removesuffix("_text").replace("_", "-")
                raise ValueError(f"{option} {value} conflicts with the study's stored "
                                 f"{old[name]}; omit it to continue the study, or use a new "
                                 "--study")

    def _parsed(self, name: str, stored: SearchSettings, space: FusionSpace) -> Any:
        value = getattr(self, name)
        if name in ("logs", "scores"):
            return resolve(value)
        if name == "objective_text":
            return parse_objective(value)
        if name == "control_text":
            return weights_option(value, space, stored.formula, "--control")
        if name == "conditional_text":
            return parse_conditional(value, space.tasks)
        if name == "guardrail_text":
            return {g.metric: g.max_drop for g in parse_guardrails(value)}
        if name == "examination_text":
            return parse_examination(value)
        if name == "estimator_param_text":
            return parse_estimator_params(value, stored.estimator)
        return value


NEW_STUDY_OPTIONS = tuple(f.name for f in dataclasses.fields(NewStudy))
"""Parameters that describe a study: on an existing one they must agree with what it
stored."""


def given_options(ctx: click.Context) -> list[str]:
    """The study options given on the command line (not defaults)."""
    return [p for p in ctx.params if p in NEW_STUDY_OPTIONS
            and ctx.get_parameter_source(p) == click.core.ParameterSource.COMMANDLINE]
