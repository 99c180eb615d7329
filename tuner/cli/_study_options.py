"""The options of a new study (``--logs --scores --estimator --formula ...``) and their
parsers, shared by ``search run``, ``search ask`` and ``search pareto``.

Apart from :mod:`tuner.cli._common` because their choices come from the simulator's
registries (importing every estimator), which commands that only read a study do not need.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click
import numpy as np

from simulator.estimators import ESTIMATORS
from simulator.fusion import FUSIONS, make_fusion
from simulator.intervals import INTERVALS
from simulator.proxies import ORDERING_SCORES
from tuner.space import FusionSpace
from tuner.weights_text import parse_task_numbers

__all__ = ["parse_conditional", "parse_examination", "study_data_options", "weights_option"]

F = TypeVar("F", bound=Callable[..., Any])


def weights_option(text: str | None, space: FusionSpace, formula: str,
                    what: str) -> list[float] | None:
    """Parse ``<task>=<weight>,...`` into one weight per task of ``space``, validated.

    Every task needs a weight; the formula decides the valid values (finite, and
    ``>= 0`` for the multiplicative one), and the vector rescaled to a pinned weight
    of 1 must lie in the search box, because CEM starts from it.
    """
    if text is None:
        return None
    tasks = space.tasks
    values = parse_task_numbers(text, what, names=tasks, require_all=True, value="weight",
                                example=f"{tasks[0]}=1")
    weights = np.array([values[t] for t in tasks])
    try:
        make_fusion(formula).validate_weights(weights, tasks)
        x = space.from_weights(weights)
    except ValueError as err:
        raise ValueError(f"{what}: {err}") from None
    for task, v in zip(space.free_tasks, x, strict=True):
        if not space.low <= v <= space.high:
            raise ValueError(
                f"{what}: weight of task {task!r} is {v:g} relative to the pinned "
                f"{space.pinned!r}; CEM starts from it, so it must lie in the search box "
                f"[{space.low:g}, {space.high:g}] (--low, --high)")
    return weights.tolist()


def parse_conditional(text: str | None, tasks: tuple[str, ...]) -> dict[str, str]:
    conditional: dict[str, str] = {}
    for term in filter(None, (text or "").split(",")):
        child, _, parent = term.partition("=")
        if child.strip() not in tasks or parent.strip() not in tasks:
            raise ValueError(f"--conditional term {term!r}: both tasks must be score "
                             f"tasks {list(tasks)}")
        if child.strip() in conditional:
            raise ValueError(f"--conditional gives task {child.strip()!r} more than once; "
                             "give each task once")
        conditional[child.strip()] = parent.strip()
    return conditional


_STUDY_DATA_OPTIONS = (
    click.option("--logs", type=click.Path(), help="Logged traffic (new study): a Parquet or "
                 "CSV file, or a folder of Parquet files (hive partitions too), streamed."),
    click.option("--scores", type=click.Path(), help="Score table (new study): a Parquet "
                 "file or a folder of them."),
    click.option("--estimator", type=click.Choice([*sorted(ESTIMATORS), *ORDERING_SCORES]),
                 default="snips", show_default=True,
                 help="Off-policy estimator of every trial (new study); auc or gauc rank the "
                 "trials by that fused-score AUC proxy on the search split instead, an "
                 "ordering score with no unit or interval (held-out figures stay SNIPS's)."),
    click.option("--formula", type=click.Choice(sorted(FUSIONS)), default="multiplicative",
                 show_default=True),
    click.option("--pinned", help="Task whose weight is fixed at 1 (default: the first)."),
    click.option("--low", type=float, default=0.0, show_default=True),
    click.option("--high", type=float, default=4.0, show_default=True),
    click.option("--conditional", "conditional_text",
                 help="Score tasks conditional on another, e.g. conversion=click (for dm/dr)."),
    click.option("--holdout-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True),
                 default=0.5, show_default=True),
    click.option("--interval", type=click.Choice(list(INTERVALS)), default="bootstrap",
                 show_default=True, help="95% intervals: percentile bootstrap over requests, "
                 "studentized bootstrap (bootstrap-t) or normal (delta method)."),
)


def parse_examination(text: str | None) -> list[float] | None:
    """``--examination 1,0.6,0.4`` -> ``[1.0, 0.6, 0.4]`` (None when not given)."""
    if text is None:
        return None
    try:
        values = [float(x) for x in text.split(",")]
    except ValueError:
        values = []
    if not values or not all(0 < x <= 1 for x in values):
        raise ValueError(f"--examination {text!r}: give one probability in (0, 1] per slot, "
                         "comma-separated, e.g. 1,0.6,0.4")
    return values


def study_data_options(fn: F) -> F:
    """``--logs --scores --estimator --formula --pinned --low --high --conditional
    --holdout-fraction --interval`` of a new study."""
    for option in reversed(_STUDY_DATA_OPTIONS):
        fn = option(fn)
    return fn
