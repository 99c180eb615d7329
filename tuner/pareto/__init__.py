"""Multi-objective (Pareto) search of fusion weights: the trade-off between 2 or 3 metrics.

``_config``: which metrics and how to search; ``_front``: non-dominated sorting and the
front of a study's trials; ``_search``: a resumable NSGA-II or CEM-over-scalarisations
search stored in a multi-objective Optuna study; ``_plots``: the front as a PNG.
"""

from __future__ import annotations

from tuner.pareto._config import PARETO_STRATEGIES, ParetoConfig, parse_metrics
from tuner.pareto._front import (
    DIRECTIONS,
    MetricEstimate,
    ParetoFront,
    ParetoPoint,
    dominates,
    front_of_trials,
    non_dominated_ranks,
    pareto_mask,
)
from tuner.pareto._plots import plot_front
from tuner.pareto._search import (
    ATTR_PARETO,
    ParetoObjective,
    ParetoResult,
    ParetoSearch,
    create_pareto_study,
    load_pareto,
    make_strategy,
    run_pareto,
)

__all__ = [
    "ATTR_PARETO",
    "DIRECTIONS",
    "PARETO_STRATEGIES",
    "MetricEstimate",
    "ParetoConfig",
    "ParetoFront",
    "ParetoObjective",
    "ParetoPoint",
    "ParetoResult",
    "ParetoSearch",
    "create_pareto_study",
    "dominates",
    "front_of_trials",
    "load_pareto",
    "make_strategy",
    "non_dominated_ranks",
    "pareto_mask",
    "parse_metrics",
    "plot_front",
    "run_pareto",
]
