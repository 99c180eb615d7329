"""A study's leading picks side by side on one split, with their paired differences.

During a search each trial is estimated with its own interval. Whether two picks
really differ is a question about their *difference* on the same requests: the
estimates share the log, so that difference is much less noisy than either
interval suggests, yet it can still exceed the gap between the leaders. This
module re-evaluates the best trials, the strategy's pick (CEM's mean) and the control
together on one split (the held-out one by default, which the search never saw) and gives, for
each pick against the leader, the paired difference with its interval, the
probability that the leader is truly better, and how many requests would
separate the two at 95%.

The picks are ranked, and the leader chosen, by the best ordering the log allows
(:data:`ORDERS`): ``gated_dr`` on the compared split where the log is held whole and its
score table covers every label task (measured to order weight vectors better than the
replay on small logs, ``bench/ordering_quality.py``), else the study's estimator. Only the
ranking uses it: every figure reported as a metric (each pick's estimate, its difference
to the leader and their intervals) is the study's estimator's.

The probabilities and request counts come from the normal approximation of
:mod:`simulator.ordering` and take the observed gaps at face value. On a streamed log
(a folder of files, or ``--stream``) the picks are evaluated in one pass that leaves sums
(:class:`~simulator.report.Arms`), the differences' intervals come from the percentile
bootstrap's resampled sums and their standard deviations from the resamples' spread.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna

from simulator.estimators._estimate import Estimate
from simulator.ordering import requests_to_separate
from simulator.replay import OBJECTIVE
from simulator.report import Arms
from tuner.evaluation.search_data import (
    HOLDOUT,
    SEARCH,
    Workspace,
    control_weights,
)
from tuner.evaluation.streamed import StreamedWorkspace
from tuner.picks.picking import ORDERS, order_scores, pick_weights
from tuner.study import SearchSpec, is_feasible_complete, jsonable

__all__ = ["ORDERS", "ComparedPick", "Comparison", "compare_picks"]


@dataclass(frozen=True)
class ComparedPick:
    """One pick of a comparison.

    Args:
        label: the strategy's pick (``"cem mean"``), ``"trial N"`` or ``"control"``.
        trial_number: the trial's number, or None.
        weights: fusion weights, in the order of the score tasks.
        search_value: the metric's estimate on the search split.
        estimate: the metric's estimate on the compared split.
        diff: this pick minus the leader, on the same resampled requests (None
            for the leader).
        p_leader_better: probability that the leader's true value is higher
            (normal approximation; nan for the leader).
        requests_to_separate: requests of the compared split at which the
            observed gap would be significant at 95% (nan for the leader).
        order_score: what ranked it (the ordering estimate, or the metric's estimate
            again), in no metric's units when the order is ``gated_dr``.
    """

    label: str
    trial_number: int | None
    weights: tuple[float, ...]
    search_value: float
    estimate: Estimate
    diff: Estimate | None
    p_leader_better: float
    requests_to_separate: float
    order_score: float = float("nan")

    @property
    def separated(self) -> bool:
        """Whether the paired interval of the difference to the leader excludes 0."""
        return self.diff is not None and (self.diff.high < 0.0 or self.diff.low > 0.0)

    def to_dict(self, tasks: Sequence[str]) -> dict[str, Any]:
        """JSON-ready; ``tasks`` name the weights."""
        def est(e: Estimate | None) -> dict[str, float] | None:
            return None if e is None else {"value": e.value, "low": e.low, "high": e.high,
                                           "events": e.events}

        # non-finite figures (the leader's own, unknown events) become null
        return dict(jsonable({
            "label": self.label, "trial": self.trial_number,
            "weights": dict(zip(tasks, self.weights, strict=True)),
            "search_value": self.search_value, "estimate": est(self.estimate),
            "diff_vs_leader": est(self.diff), "p_leader_better": self.p_leader_better,
            "separated": self.separated, "requests_to_separate": self.requests_to_separate,
            "order_score": self.order_score}))


@dataclass(frozen=True)
class Comparison:
    """Picks of one study compared on one split, the leader (first by ``order``) first.

    ``order`` is what ranked them (``"gated_dr"`` or the estimator's name), ``order_note``
    why ``"auto"`` fell back to the estimator (``""``: it did not).
    """

    study_name: str
    split: str
    metric: str
    n_requests: int
    estimator: str
    tasks: tuple[str, ...]
    picks: tuple[ComparedPick, ...]
    order: str = ""
    order_note: str = ""

    @property
    def n_separated(self) -> int:
        """Picks whose difference to the leader is significant at 95%."""
        return sum(p.separated for p in self.picks)

    def to_dict(self) -> dict[str, Any]:
        return {"study": self.study_name, "split": self.split, "metric": self.metric,
                "n_requests": self.n_requests, "estimator": self.estimator,
                "order": self.order, "order_note": self.order_note,
                "tasks": list(self.tasks), "picks": [p.to_dict(self.tasks) for p in self.picks]}


def compare_picks(ws: Workspace | StreamedWorkspace, study: optuna.Study, search: SearchSpec,
                  top: int = 5, split: str = HOLDOUT, metric: str = OBJECTIVE,
                  order: str = "auto") -> Comparison:
    """Compare the strategy's pick, the ``top`` best feasible trials and the control on
    ``split``.

    Args:
        ws: the study's workspace (its log, scores and settings), held whole or streamed.
        study: a single-objective fusion study with complete trials.
        search: what it searches and how (its strategy gives the first pick).
        top: how many of the best trials (by their search-split value) to include.
        split: ``"holdout"`` (default) or ``"search"``.
        metric: ``"objective"`` or one of the log's tasks.
        order: how the picks are ranked (:data:`ORDERS`).

    Raises:
        ValueError: an unknown split, metric or order, ``top < 1``, ``order="gated_dr"``
            where it cannot be made (a streamed log, a task without scores), a study
            without a complete feasible trial, or a streamed log whose interval is not the
            percentile bootstrap (the differences' intervals are made from sums).
    """
    if top < 1:
        raise ValueError(f"top must be >= 1, got {top}")
    if split not in (SEARCH, HOLDOUT):
        raise ValueError(f"unknown split {split!r}; valid: {[HOLDOUT, SEARCH]}")
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}; valid: {list(ORDERS)}")
    settings = ws.settings
    tasks = ws.tasks
    metrics = (*tasks, OBJECTIVE)
    if metric not in metrics:
        raise ValueError(f"unknown metric {metric!r}; valid: {list(metrics)}")
    labels, numbers, rows = _picks(study, search, top, control_weights(ws))
    weights = np.stack(rows)
    m = metrics.index(metric)

    replay = ws.replay(split)
    arms = Arms.of(replay, weights, settings.objective)
    est = arms.estimate
    value, low, high = est.value[:, m], est.low, est.high
    search_value = (value if split == SEARCH else
                    ws.replay(SEARCH).evaluate(weights, settings.objective).value[:, m])
    by, note, score = order_scores(ws, split, weights, order, value, arms.estimator, m)
    ranked = np.argsort(-np.where(np.isfinite(score), score, -np.inf), kind="stable")
    leader = int(ranked[0])
    contrast = np.eye(len(weights)) - np.eye(len(weights))[leader][None, :]
    d_low, d_high = arms.bounds(contrast)
    sd_of = arms.contrast_sd(contrast)[:, m]
    n, level, ess = est.n, est.level, est.ess
    events = est.events[:, m] if est.events is not None else np.full(len(weights), np.nan)
    picks = []
    for p in ranked:
        estimate = Estimate(float(value[p]), float(low[p, m]), float(high[p, m]),
                            float(ess[p]), n, level, events=float(events[p]))
        diff, p_better, need = None, float("nan"), float("nan")
        if p != leader:
            gap = float(value[p] - value[leader])
            diff = Estimate(gap, float(d_low[p, m]), float(d_high[p, m]),
                            float(min(ess[p], ess[leader])), n, level,
                            events=float(min(events[p], events[leader])))
            sd = float(sd_of[p])
            p_better = _phi(-gap / sd) if sd > 0 else float(gap < 0)
            need = requests_to_separate(gap, sd, n)
        picks.append(ComparedPick(labels[p], numbers[p], tuple(float(x) for x in weights[p]),
                                  float(search_value[p]), estimate, diff, p_better, need,
                                  float(score[p])))
    return Comparison(study.study_name, split, metric, n, arms.estimator,
                      tuple(ws.score_tasks), tuple(picks), by, note)


def _phi(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def _picks(study: optuna.Study, search: SearchSpec, top: int, control: np.ndarray
           ) -> tuple[list[str], list[int | None], list[np.ndarray]]:
    """Labels, trial numbers and weights of the strategy's pick, the best trials and the
    control."""
    mean, _ = pick_weights(study, search, "strategy")
    labels: list[str] = [search.build().pick_label.lower()]
    numbers: list[int | None] = [None]
    rows = [mean]
    feasible = [t for t in study.get_trials(deepcopy=False,
                                            states=(optuna.trial.TrialState.COMPLETE,))
                if is_feasible_complete(t) and t.value is not None]
    if not feasible:
        raise ValueError(f"study {study.study_name!r} has no complete trial that keeps its "
                         "guardrails; there is nothing to compare")
    for t in sorted(feasible, key=lambda t: -float(t.value))[:top]:  # type: ignore[arg-type]
        labels.append(f"trial {t.number}")
        numbers.append(t.number)
        rows.append(search.space.to_weights(t.params))
    labels.append("control")
    numbers.append(None)
    rows.append(control)
    return labels, numbers, rows
