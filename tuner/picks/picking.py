"""Choosing the weight vector to export, and judging it on held-out requests.

The best of many noisy trials overstates itself (the winner's curse), so the
default pick is the strategy's own (CEM's final mean — the centre of the last elite, an
average over many good trials), and every pick is judged on the held-out split of the
log, which the search never saw. A pick that does not beat the control weights there
(:func:`beats_control`, by the test :mod:`tuner.picks.control_test` names) is replaced by
them (:func:`control_export`) unless forced.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import optuna

from simulator.replay import OBJECTIVE
from simulator.report import ABReport, Arms, report_of
from tuner.evaluation.dataset_io import dataset_fingerprint
from tuner.evaluation.objective import FusionObjective
from tuner.evaluation.search_data import (
    HOLDOUT,
    SEARCH,
    Workspace,
    control_weights,
    unscored_tasks,
)
from tuner.evaluation.streamed import StreamedWorkspace
from tuner.picks.control_test import (
    CONTROL_TESTS,
    DEFAULT_CONTROL_TEST,
    ControlTest,
    cdr,
    choose_on_search,
    gated_dr,
    one_sided_of,
    one_sided_test,
    two_sided_test,
)
from tuner.picks.export import CONTROL_PICK, LEGACY_PICKS, PICKS, ExportedWeights
from tuner.picks.validated import ValidatedPick, validated_pick
from tuner.study import (
    INFEASIBLE,
    SearchSpec,
    is_feasible_complete,
    jsonable,
    picks_by_round,
    replayed_strategy,
)

__all__ = ["BEST_CANDIDATES", "ORDERS", "beats_control", "best_by_order", "candidate_rounds",
           "control_export", "export_pick", "order_scores", "pick_weights", "round_pick_scores",
           "validated_export"]

ORDERS = ("auto", "gated_dr", "estimate")
"""How picks are ranked where a command ranks them (``search compare``'s leader, ``search
export --best``): ``auto`` is ``gated_dr`` where the log is held whole and its score table
covers every label task, else the estimate; ``gated_dr`` insists; ``estimate`` is the
study estimator's (or a trial's stored) value. ``gated_dr`` orders weight vectors better
than the replay on small logs (``bench/ordering_quality.py``) but is an ordering score, not
a metric: what is reported stays the study estimator's."""

BEST_CANDIDATES = 32
"""``search export --best`` ranks this many of the best trials by their stored value
(a CEM population) again by :data:`ORDERS`' ordering on the search split."""


def candidate_rounds(completed: int) -> list[int]:
    """The rounds whose picks a validated export chooses among: 1, 2, 4, 8, ... and the
    last of ``completed`` (so the budget itself is chosen on held-out requests: a strategy
    that went on to fit its search split's noise is stopped where it was best).

    Example:
        >>> candidate_rounds(20)
        [1, 2, 4, 8, 16, 20]
    """
    if completed < 1:
        return []
    rounds = {completed}
    r = 1
    while r < completed:
        rounds.add(r)
        r *= 2
    return sorted(rounds)


def pick_weights(study: optuna.Study, search: SearchSpec, pick: str,
                 trial_number: int | None = None) -> tuple[np.ndarray, int | None]:
    """``([T] weights, trial number or None)`` of a pick (one of :data:`PICKS`).

    Raises:
        ValueError: unknown pick, a study without complete trials, or a trial
            number that does not exist or did not complete.
    """
    pick = LEGACY_PICKS.get(pick, pick)
    space = search.space
    if pick not in PICKS:
        raise ValueError(f"unknown pick {pick!r}; valid: {list(PICKS)}")
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        raise ValueError(f"study {study.study_name!r} has no complete trial yet; run "
                         "'fusiontune search run' first")
    if len(study.directions) > 1 and pick != "trial":
        raise ValueError(f"study {study.study_name!r} is a Pareto study: it has no single best "
                         "trial or strategy pick; export one point of its front with --trial N "
                         f"(listed by 'fusiontune search pareto --study {study.study_name} "
                         "--rounds 0')")
    if pick == "strategy":
        strategy, _ = replayed_strategy(study, search)
        return space.matrix_to_weights(strategy.pick()[None])[0], None
    feasible = [t for t in complete if is_feasible_complete(t)]
    if pick == "best_trial":
        if not feasible:
            raise ValueError(f"every complete trial of study {study.study_name!r} breaks a "
                             "guardrail; none can be exported as best")
        trial = max(feasible, key=lambda t: t.value if t.value is not None else -np.inf)
    else:
        numbers = {t.number: t for t in complete}
        if trial_number not in numbers:
            valid = f"0..{len(study.trials) - 1}" if study.trials else "none"
            raise ValueError(f"trial {trial_number} of study {study.study_name!r} does not "
                             f"exist or did not complete; trial numbers: {valid}")
        trial = numbers[trial_number]
        if not is_feasible_complete(trial):
            raise ValueError(f"trial {trial_number} breaks a guardrail "
                             f"({trial.user_attrs.get(INFEASIBLE)}); it cannot be exported")
    return space.to_weights(trial.params), trial.number


def order_scores(ws: Workspace | StreamedWorkspace, split: str, weights: np.ndarray,
                 order: str, value: np.ndarray, estimator: str, metric: int = -1
                 ) -> tuple[str, str, np.ndarray]:
    """``(what ranks, why auto fell back, [P] scores)`` of the vectors ``weights``:
    ``gated_dr`` pooled over them on ``split`` (column ``metric`` of its estimate), or
    ``value`` (their estimates by ``estimator``) where ``order`` says so or ``auto`` cannot
    make ``gated_dr``.

    Raises:
        ValueError: an unknown order, or ``order="gated_dr"`` where it cannot be made (a
            streamed log, too few vectors to pool, a label task without scores).
    """
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}; valid: {list(ORDERS)}")
    if order == "estimate":
        return estimator, "", value
    why = ""
    if isinstance(ws, StreamedWorkspace):
        why = ("gated_dr needs the log held whole (it calibrates on the split and pools the "
               "picks over it); this study's log is streamed")
    elif len(weights) < gated_dr().min_population:
        why = f"gated_dr pools at least {gated_dr().min_population} vectors"
    else:
        missing = unscored_tasks(ws)
        if missing:
            why = f"gated_dr needs a score for every label task; the table lacks {missing}"
    if why or isinstance(ws, StreamedWorkspace):  # (the second: for the type checker)
        if order == "gated_dr":
            raise ValueError(f"--order gated_dr: {why}; give --order estimate")
        return estimator, f"ranked by {estimator}: {why}", value
    est = ws.replay_as(split, gated_dr()).evaluate(weights, ws.settings.objective)
    return "gated_dr", "", np.asarray(est.value[:, metric], dtype=np.float64)


def best_by_order(ws: Workspace | StreamedWorkspace, study: optuna.Study, search: SearchSpec,
                  order: str = "auto") -> tuple[np.ndarray, int, dict[str, Any]]:
    """``([T] weights, trial number, how it was chosen)`` of the best feasible trial:
    the :data:`BEST_CANDIDATES` best by their stored search-split value, ranked again by
    ``order`` (:func:`order_scores`) on the search split. The record (``extra.selection``
    of the export) names what ranked, the candidates, their stored values and scores.

    Raises:
        ValueError: as :func:`pick_weights` for ``"best_trial"``, or :func:`order_scores`.
    """
    pick_weights(study, search, "best_trial")  # its refusals: no trial, Pareto, all infeasible
    feasible = [t for t in study.get_trials(deepcopy=False,
                                            states=(optuna.trial.TrialState.COMPLETE,))
                if is_feasible_complete(t) and t.value is not None]
    top = sorted(feasible, key=lambda t: -float(t.value))[:BEST_CANDIDATES]  # type: ignore
    weights = np.stack([search.space.to_weights(t.params) for t in top])
    stored = np.array([float(t.value) for t in top])  # type: ignore[arg-type]
    by, note, score = order_scores(ws, SEARCH, weights, order, stored,
                                   ws.settings.ordering_score or ws.settings.metric_estimator)
    best = int(np.argmax(np.where(np.isfinite(score), score, -np.inf)))
    selection = {
        "rule": f"the best of the {len(top)} best trials by their stored value, ranked by "
                f"{by} on the search split",
        "ranked_by": by, "note": note,
        "candidates": [t.number for t in top],
        "stored_values": [jsonable(float(x)) for x in stored],
        "scores": [jsonable(float(x)) for x in score],
    }
    return weights[best], top[best].number, selection


def round_pick_scores(ws: Workspace | StreamedWorkspace, study: optuna.Study,
                      search: SearchSpec) -> np.ndarray:
    """``[G]`` ``gated_dr``'s objective on the search split of the strategy's pick after
    each of the study's ``G`` completed rounds, pooled over those picks (``search history
    --order gated_dr``): an ordering score that does not share the noise the search climbed.

    Raises:
        ValueError: fewer completed rounds than ``gated_dr`` pools, or a log it cannot be
            made on (:func:`order_scores`).
    """
    picks = search.space.matrix_to_weights(picks_by_round(study, search))
    _, _, score = order_scores(ws, SEARCH, picks, "gated_dr", np.full(len(picks), np.nan),
                               ws.settings.metric_estimator)
    return score


def validated_export(ws: Workspace | StreamedWorkspace, study: optuna.Study,
                     search: SearchSpec,
                     control_test: str = DEFAULT_CONTROL_TEST,
                     ) -> tuple[ExportedWeights, ABReport, dict[str, float]]:
    """The strategy's pick after one of the rounds :func:`candidate_rounds` names, as
    :func:`export_pick` returns it (pick ``"strategy"``), with ``extra["selection"]`` saying
    how it was chosen.

    With the ``"one-sided"`` control test (the default) the candidates are ordered by
    ``gated_dr`` on the search split (:func:`tuner.picks.control_test.choose_on_search`),
    so the whole held-out split, which had no part in the choice, reports the chosen
    vector and tests it. With ``"two-sided"`` (the rule before) the choice is made on one
    half of the held-out split and reported and tested on the other
    (:func:`tuner.picks.validated.validated_pick`).

    Raises:
        ValueError: a study without a completed round, an unknown control test, or a
            streamed log (both choices need the log held whole: ``gated_dr`` pools the
            candidates over the whole search split, the folds cut the held-out one).
    """
    _check_test(control_test)
    if isinstance(ws, StreamedWorkspace):
        raise ValueError(f"--validated needs the log held whole, and {ws.settings.logs} is "
                         "streamed (a folder, or --stream): it orders the rounds' picks by "
                         "gated_dr, which pools them over the whole search split (or, with "
                         "--control-test two-sided, cuts the held-out split in folds). Export "
                         "without --validated, or make the study on one Parquet file without "
                         "--stream")
    picks = picks_by_round(study, search)
    if len(picks) == 0:
        raise ValueError(f"study {study.study_name!r} has no completed round yet; run "
                         "'fusiontune search run' first")
    rounds = candidate_rounds(len(picks))
    weights = search.space.matrix_to_weights(picks[[r - 1 for r in rounds]])
    control, objective = control_weights(ws), ws.settings.objective
    if control_test == "two-sided":
        choice = validated_pick(ws.replay(HOLDOUT), weights, control, objective)
        return export_pick(ws, study.study_name, choice.weights, "strategy", None,
                           search.space.pinned, validated=(choice, rounds),
                           control_test=control_test)
    _need_scores(ws, "--validated orders the rounds' picks by gated_dr")
    on_search = choose_on_search(ws.replay_as(SEARCH, gated_dr()), weights, control,
                                 objective)
    selection = {
        "rule": "the strategy's pick after the round with the best gated_dr objective on "
                "the search split; reported and tested on the whole held-out split",
        "rounds": rounds,
        "chosen_round": rounds[on_search.candidate],
        "search_split_gated_dr": [jsonable(float(x)) for x in on_search.values],
        "search_requests": on_search.n_requests,
    }
    return export_pick(ws, study.study_name, on_search.weights, "strategy", None,
                       search.space.pinned, control_test=control_test, selection=selection)


def export_pick(ws: Workspace | StreamedWorkspace, study_name: str, weights: np.ndarray, pick: str,
                trial_number: int | None, pinned: str | None = None,
                validated: tuple[ValidatedPick, list[int]] | None = None,
                control_test: str | None = None,
                selection: dict[str, Any] | None = None,
                ) -> tuple[ExportedWeights, ABReport, dict[str, float]]:
    """The export record of a pick, its held-out A/B report and its search-split values.

    ``pinned`` is the task whose weight the search held at 1, written in the file's
    ``fusion`` block with the formula's parameters. With ``validated`` (the pick was chosen
    on the choose fold of the held-out split, among the picks after the rounds given) the
    report is that of its report fold alone, and the control test must be
    ``"two-sided"`` (it is made there). ``control_test`` names the test against control
    (:data:`~tuner.picks.control_test.CONTROL_TESTS`; None: none is made, as for a Pareto
    point or a loss-weight pick), recorded in ``extra["control_test"]``; ``selection`` (how
    the pick was chosen) goes to ``extra["selection"]``.

    A streamed ``ws`` (a folder of files, or ``--stream``) is read in passes that leave sums:
    the report's paired lifts come from the percentile bootstrap, the one-sided test uses
    the study's estimator (``cdr`` calibrates a reward model on the whole split), and the
    data fingerprint is the files' (:func:`~tuner.evaluation.dataset_io.dataset_fingerprint`).

    Raises:
        ValueError: the pick breaks a guardrail on the held-out split, an unknown control
            test, or a one-sided test asked of a split-sample pick.
    """
    if control_test is not None:
        _check_test(control_test)
    if validated is not None and control_test != "two-sided":
        raise ValueError("a pick chosen on half the held-out split is tested two-sided on "
                         "the other half; give control_test='two-sided'")
    settings = ws.settings
    control = control_weights(ws)
    # one held-out pass where the report and a streamed log's one-sided test share it
    arms: Arms | None = None
    if validated is not None:
        report = validated[0].report
    else:
        arms = Arms.of(ws.replay(HOLDOUT), np.stack([control, np.asarray(weights, float)]),
                       settings.objective)
        report = report_of(arms)
    holdout = FusionObjective.for_workspace(ws, HOLDOUT)
    if holdout.guardrails:
        reason = holdout(weights[None])[0].infeasible
        if reason:
            raise ValueError(f"the {pick} pick breaks a guardrail on the held-out split "
                             f"({reason}); it is not exported")
    search = ws.replay(SEARCH).evaluate(weights[None], settings.objective)
    search_values = {m: float(search.value[0, i]) for i, m in enumerate(search.metrics)}
    row = report.row(OBJECTIVE)
    test = (None if control_test is None else
            _control_test(ws, weights, control, control_test, report, arms))
    if validated is not None:
        selection = {
            "rule": "the strategy's pick after the round with the best lift on the "
                    "choose half of the held-out split; reported on the other half",
            "rounds": validated[1],
            "chosen_round": validated[1][validated[0].candidate],
            "choose_fold_lifts": [jsonable(float(x)) for x in validated[0].choose_lifts],
            "choose_requests": validated[0].n_choose,
            "report_requests": report.n_requests}
    exported = ExportedWeights(
        formula=settings.formula,
        tasks=ws.score_tasks,
        weights=tuple(float(x) for x in weights),
        objective={"value": row.treatment.value, "low": row.treatment.low,
                   "high": row.treatment.high, "split": HOLDOUT},
        pick=pick,
        study_name=study_name,
        trial_number=trial_number,
        data_fingerprint=settings.data_fingerprint or _fingerprint(ws),
        model_fingerprint=settings.model_fingerprint or "unknown",
        fusion={**ws.replay(HOLDOUT).fusion.describe(), "pinned": pinned},
        extra={
            "estimator": settings.metric_estimator,
            **({} if settings.ordering_score is None
               else {"search_ranked_by": settings.ordering_score}),
            "objective_weights": dict(settings.objective),
            "search_split_value": search_values[OBJECTIVE],
            "control_weights": control.tolist(),
            "lift_vs_control": {"value": row.lift.value, "low": row.lift.low,
                                "high": row.lift.high, "events": jsonable(row.lift.events)},
            "holdout_metrics": {r.metric: {"value": r.treatment.value, "low": r.treatment.low,
                                           "high": r.treatment.high,
                                           "events": jsonable(r.treatment.events)}
                                for r in report.rows},
            "holdout_requests": report.n_requests,
            **({} if test is None else {"control_test": test.to_dict()}),
            **({} if selection is None else {"selection": selection}),
        },
    )
    return exported, report, search_values


def _fingerprint(ws: Workspace | StreamedWorkspace) -> str:
    if isinstance(ws, StreamedWorkspace):
        return dataset_fingerprint(ws.logs)
    return ws.traffic.fingerprint()


def _need_scores(ws: Workspace | StreamedWorkspace, what: str) -> None:
    """Refuse, naming the alternative, where the calibrated-DR family has no reward model."""
    missing = unscored_tasks(ws)
    if missing:
        raise ValueError(f"{what}, which needs a score for every label task; the score "
                         f"table lacks {missing}: give --control-test two-sided (the study "
                         "estimator's two-sided test)")


def _check_test(control_test: str) -> None:
    if control_test not in CONTROL_TESTS:
        raise ValueError(f"control test {control_test!r} is unknown; valid: "
                         f"{list(CONTROL_TESTS)}")


def _control_test(ws: Workspace | StreamedWorkspace, weights: np.ndarray,
                  control: np.ndarray, rule: str, report: ABReport, arms: Arms | None
                  ) -> ControlTest:
    """The test of the pick against control: one-sided by ``cdr`` on the whole held-out
    split (by the study's estimator on a streamed one, from the report's own ``arms``), or
    two-sided by the study's estimator on the requests ``report`` covers (``arms`` None:
    the report half of a split-sample pick)."""
    if rule == "one-sided" and isinstance(ws, StreamedWorkspace):
        if arms is None:
            raise ValueError("a split-sample pick is tested two-sided on its report half")
        return one_sided_of(arms, arms.estimator)
    if rule == "one-sided" and isinstance(ws, Workspace):
        _need_scores(ws, "the one-sided control test estimates the lift by cdr")
        return one_sided_test(ws.replay_as(HOLDOUT, cdr()), weights, control,
                              ws.settings.objective)
    return two_sided_test(report.row(OBJECTIVE).lift, ws.settings.metric_estimator,
                          report.n_requests,
                          "holdout report half" if arms is None else HOLDOUT)


def beats_control(exported: ExportedWeights) -> bool:
    """Whether the export's pick passed its control test (``extra["control_test"]``, as
    :func:`export_pick` records it); a record without one (written before the test was
    recorded) by the former rule: the lower end of the held-out lift interval,
    ``extra["lift_vs_control"]["low"]``, is above 0."""
    test = exported.extra.get("control_test")
    if isinstance(test, dict) and "verdict" in test:
        return bool(test["verdict"] == "pick")
    return float(exported.extra["lift_vs_control"]["low"]) > 0


def control_export(exported: ExportedWeights, report: ABReport) -> ExportedWeights:
    """The control weights as an export (pick ``"control"``), in place of a pick that does
    not beat them; the refused pick's weights and held-out estimates go to
    ``extra["refused_pick"]``.

    Args:
        exported: :func:`export_pick`'s record of the refused pick.
        report: its held-out A/B report (control vs the pick).
    """
    row = report.row(OBJECTIVE)
    extra = dict(exported.extra)
    refused = {
        "pick": exported.pick,
        "trial_number": exported.trial_number,
        "weights": exported.weight_map,
        "objective": dict(exported.objective),
        "search_split_value": extra.pop("search_split_value"),
        "lift_vs_control": extra.pop("lift_vs_control"),
        "holdout_metrics": extra.pop("holdout_metrics"),
    }
    extra["holdout_metrics"] = {
        r.metric: {"value": r.control.value, "low": r.control.low, "high": r.control.high,
                   "events": jsonable(r.control.events)} for r in report.rows}
    extra["refused_pick"] = refused
    return dataclasses.replace(
        exported,
        weights=tuple(float(w) for w in extra["control_weights"]),
        objective={"value": row.control.value, "low": row.control.low,
                   "high": row.control.high, "split": exported.objective["split"]},
        pick=CONTROL_PICK,
        trial_number=None,
        extra=extra,
    )
