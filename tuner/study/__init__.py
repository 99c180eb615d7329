"""The study loop: rounds of a search strategy over an Optuna study, resumable from the
database alone, driven by one process (:func:`run_rounds`) or by many workers
(:func:`run_worker`); its trials, history and stored settings.

Each name is imported from its module when it is first used (:mod:`tuner._exports`), so
that reading a study (``search history``) imports neither the writers nor the ORM.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tuner._exports import lazy_exports

if TYPE_CHECKING:
    from tuner.study._attrs import (
        ATTR_CONFIG,
        ATTR_EXPORTED,
        ATTR_INIT_MEAN,
        ATTR_LEARNED_OF,
        ATTR_SEED,
        ATTR_SETTINGS,
        ATTR_SPACE,
        ATTR_STRATEGY,
        SearchSpec,
        exported_attr,
        jsonable,
        name_metrics,
        read_spec,
    )
    from tuner.study._convergence import ConvergenceRule, Stop, run_until_converged
    from tuner.study._history import (
        RoundSummary,
        completed_rounds,
        history,
        picks_by_round,
        replayed_strategy,
        trials_table,
    )
    from tuner.study._live import (
        LiveGroup,
        LiveRound,
        TellReport,
        ask_round,
        live_rounds,
        pending_round,
        tell_results,
    )
    from tuner.study._live_rounds import Calibration, GroupResult, calibrate, select_groups
    from tuner.study._loop import check_single_objective, run_rounds
    from tuner.study._open import create_or_load_study, load_search, read_search, stored_settings
    from tuner.study._trials import (
        FAIL_REASON,
        INFEASIBLE,
        REASON_INTERRUPTED,
        REASON_NONFINITE,
        TrialResult,
        build_trial,
        is_feasible_complete,
    )
    from tuner.study._workers import (
        ATTR_TARGET,
        WorkerConfig,
        WorkerReport,
        run_worker,
        set_target_rounds,
        worker_id,
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
    "ATTR_TARGET",
    "FAIL_REASON",
    "INFEASIBLE",
    "REASON_INTERRUPTED",
    "REASON_NONFINITE",
    "Calibration",
    "ConvergenceRule",
    "GroupResult",
    "LiveGroup",
    "LiveRound",
    "RoundSummary",
    "SearchSpec",
    "Stop",
    "TellReport",
    "TrialResult",
    "WorkerConfig",
    "WorkerReport",
    "ask_round",
    "build_trial",
    "calibrate",
    "check_single_objective",
    "completed_rounds",
    "create_or_load_study",
    "exported_attr",
    "history",
    "is_feasible_complete",
    "jsonable",
    "live_rounds",
    "load_search",
    "read_search",
    "name_metrics",
    "pending_round",
    "run_rounds",
    "run_worker",
    "picks_by_round",
    "replayed_strategy",
    "run_until_converged",
    "select_groups",
    "set_target_rounds",
    "read_spec",
    "stored_settings",
    "tell_results",
    "trials_table",
    "worker_id",
]

_MODULES = {
    "_attrs": ("ATTR_CONFIG", "ATTR_EXPORTED", "ATTR_INIT_MEAN", "ATTR_LEARNED_OF", "ATTR_SEED",
               "ATTR_SETTINGS", "ATTR_SPACE", "ATTR_STRATEGY", "SearchSpec", "exported_attr",
               "jsonable", "name_metrics", "read_spec"),
    "_convergence": ("ConvergenceRule", "Stop", "run_until_converged"),
    "_history": ("RoundSummary", "completed_rounds", "history", "picks_by_round",
                 "replayed_strategy", "trials_table"),
    "_live": ("LiveGroup", "LiveRound", "TellReport", "ask_round", "live_rounds", "pending_round",
              "tell_results"),
    "_live_rounds": ("Calibration", "GroupResult", "calibrate", "select_groups"),
    "_loop": ("check_single_objective", "run_rounds"),
    "_open": ("create_or_load_study", "load_search", "read_search", "stored_settings"),
    "_trials": ("FAIL_REASON", "INFEASIBLE", "REASON_INTERRUPTED", "REASON_NONFINITE",
                "TrialResult", "build_trial", "is_feasible_complete"),
    "_workers": ("ATTR_TARGET", "WorkerConfig", "WorkerReport", "run_worker", "set_target_rounds",
                 "worker_id"),
}

if not TYPE_CHECKING:  # mypy reads the imports above; a __getattr__ would hide typos from it
    __getattr__, __dir__ = lazy_exports(__name__, _MODULES)
