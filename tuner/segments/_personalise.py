"""A learned weight model beside a finished global study: train, judge, store, export.

``search personalise`` starts the model of :mod:`tuner.segments._learned` at the global
study's pick, trains it on the study's search split and values its policy (weights that
vary per request) on the held-out split with the study's own estimator
(:meth:`simulator.replay.Replay.request_terms`), paired with the global pick and the
control on the same requests. The guard of the per-segment search (:func:`guard`, plus
the study's guardrails) decides whether the model is exported.

The result lives in the study ``<study>/learned`` of the same database: one ordinary
Optuna trial per training (value: the held-out objective estimate; user attrs: the
interval, the lift over global, the guard's verdict, the features, the hyperparameters and
every parameter of the model as JSON), so Optuna's dashboard opens it, a rerun reuses the
latest trial instead of training again, and ``search compare`` rebuilds the model's
weights from the stored JSON without torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from simulator.estimators import RequestTerms
from simulator.logs import LoggedTraffic
from simulator.replay import Replay
from tuner.evaluation.guardrails import guardrail_reasons, parse_guardrails
from tuner.evaluation.search_data import HOLDOUT, SEARCH, Workspace, control_weights
from tuner.evaluation.streamed import StreamedWorkspace
from tuner.segments._arrays import chunk_arrays, feature_matrix
from tuner.segments._export import GuardDecision, guard, with_guardrails
from tuner.segments._export_model import write_export
from tuner.segments._learned import (
    LearnedWeights,
    LogArrays,
    WeightModelConfig,
    train_weight_model,
    weights_from_json,
)
from tuner.segments._personalise_streamed import (
    check_bootstrap,
    streamed_arrays,
    streamed_estimate,
)
from tuner.segments._replay import VERSUS_GLOBAL_AND_CONTROL, PersonalisedEstimate, terms_estimate
from tuner.study import ATTR_LEARNED_OF, name_metrics

__all__ = [
    "ATTR_LEARNED_EXPORT",
    "LearnedEvaluation",
    "PersonaliseOutcome",
    "StoredLearned",
    "chunk_arrays",
    "evaluate_learned",
    "guardrail_breach",
    "feature_matrix",
    "learned_compare",
    "learned_study_name",
    "log_arrays",
    "personalise",
    "replay_arrays",
    "store_learned",
    "stored_learned",
]

ATTR_LEARNED_EXPORT = "fusiontune:learned_export"
"""User attr of ``<study>/learned``: the last export (folder, trial, personalised or not)."""


def learned_study_name(study_name: str) -> str:
    """The study that holds the learned weight model of ``study_name``."""
    return f"{study_name}/learned"


def log_arrays(ws: Workspace | StreamedWorkspace, part: str, features: Sequence[str]
               ) -> LogArrays:
    """What the weight model's surrogate reads of a split of ``ws`` (:func:`replay_arrays`
    of its replay; a streamed log's chunk by chunk)."""
    if isinstance(ws, StreamedWorkspace):
        return streamed_arrays(ws, part, features)
    return replay_arrays(ws.replay(part), ws.parts[part], ws.settings.objective, features)


def replay_arrays(replay: Replay, traffic: LoggedTraffic, objective: Mapping[str, float],
                  features: Sequence[str]) -> LogArrays:
    """What the weight model's surrogate reads of the log ``traffic`` that ``replay``
    replays: its transformed scores, objective labels, exposures and ``features``.

    Raises:
        ValueError: a ragged log (the surrogate ranks full requests of every slot) or one
            without every slot's logging propensities.
    """
    return chunk_arrays(replay.feedback, replay.fusion.prepare(replay.scores), traffic,
                        objective, features)


@dataclass(frozen=True)
class LearnedEvaluation:
    """The learned policy against the global pick and the control on one split.

    Args:
        estimate: policies (learned, global, control) and the contrasts
            :data:`VERSUS_GLOBAL_AND_CONTROL`.
        decision: the guard's (lift over global significant, guardrails kept).
        broken: why the learned policy breaks a guardrail (``""``: none).
        rows: ``[R, F]`` the split's model inputs the evaluation read (the export's
            reproduction check uses them), or None.
    """

    estimate: PersonalisedEstimate
    decision: GuardDecision
    broken: str
    rows: np.ndarray | None = None


def evaluate_learned(ws: Workspace | StreamedWorkspace,
                     weights_of: Callable[[np.ndarray], np.ndarray],
                     features: Sequence[str], global_weights: np.ndarray,
                     split: str = HOLDOUT) -> LearnedEvaluation:
    """Value the policy ``x -> weights_of(x)`` ``[R, F] -> [R, S]`` on ``split``.

    One pass of the split's replay over the learned, global and control policies; the
    guardrails are the study's (:func:`guardrail_breach`). On a streamed log the pass
    leaves sums and the intervals are their percentile bootstrap
    (:func:`~tuner.segments._personalise_streamed.streamed_estimate`).
    """
    if isinstance(ws, StreamedWorkspace):
        return _streamed_evaluation(ws, weights_of, features, global_weights, split)
    replay = ws.replay(split)
    x = feature_matrix(ws.parts[split], features)
    r = len(x)
    policies = np.stack([np.asarray(weights_of(x), dtype=np.float64),
                         np.tile(np.asarray(global_weights, dtype=np.float64), (r, 1)),
                         np.tile(control_weights(ws), (r, 1))])  # [3, R, S]
    terms = replay.request_terms(policies)
    tasks = replay.feedback.tasks
    est = terms_estimate(terms, tasks, dict(ws.settings.objective), VERSUS_GLOBAL_AND_CONTROL)
    broken = guardrail_breach(ws, split, terms.take(np.array([2, 0])))
    return LearnedEvaluation(est, with_guardrails(guard(est, 0), broken), broken, x)


def _streamed_evaluation(ws: StreamedWorkspace, weights_of: Callable[[np.ndarray], np.ndarray],
                         features: Sequence[str], global_weights: np.ndarray, split: str
                         ) -> LearnedEvaluation:
    """:func:`evaluate_learned` on a streamed log: one pass leaving sums."""
    rows: list[np.ndarray] = []  # the split's model inputs, kept for the export's check

    def of_chunk(traffic: LoggedTraffic) -> np.ndarray:
        x = feature_matrix(traffic, features)
        rows.append(x)
        return weights_of(x)

    est, broken = streamed_estimate(ws, of_chunk, global_weights, control_weights(ws),
                                    VERSUS_GLOBAL_AND_CONTROL, split)
    return LearnedEvaluation(est, with_guardrails(guard(est, 0), broken), broken,
                             np.concatenate(rows))


def guardrail_breach(ws: Workspace, split: str, terms: RequestTerms) -> str:
    """Why a policy breaks the study's guardrails on ``split`` (``""``: it keeps them),
    from the request terms of (control, policy); judged as in the search (paired lift over
    control at the lower end of the study's interval)."""
    replay = ws.replay(split)
    tasks = replay.feedback.tasks
    rails = parse_guardrails(ws.settings.guardrails, tasks)
    return guardrail_reasons(terms, replay.interval, tasks, rails, replay.request_ids)[0]


@dataclass(frozen=True)
class StoredLearned:
    """The latest trial of ``<study>/learned``.

    Args:
        trial_number: its number.
        features: the model's inputs.
        config: the hyperparameters it was trained with.
        global_weights: the global pick it started from.
        spec: the model (:meth:`LearnedWeights.spec`).
        best_epoch: the epoch early stopping kept.
        epochs_run: the epochs trained.
    """

    trial_number: int
    features: tuple[str, ...]
    config: WeightModelConfig
    global_weights: tuple[float, ...]
    spec: dict[str, Any]
    best_epoch: int
    epochs_run: int

    def weights(self, x: np.ndarray) -> np.ndarray:
        """``[R, S]`` the model's weights for features ``x`` ``[R, F]`` (numpy, no torch)."""
        return weights_from_json(self.spec, x)


def stored_learned(storage: str, study_name: str) -> StoredLearned | None:
    """The latest complete trial of ``study_name``'s learned study, or None."""
    name = learned_study_name(study_name)
    if name not in optuna.get_all_study_names(storage):
        return None
    study = optuna.load_study(study_name=name, storage=storage)
    done = [t for t in study.get_trials(deepcopy=False,
                                        states=(optuna.trial.TrialState.COMPLETE,))]
    if not done:
        return None
    ua = max(done, key=lambda t: t.number).user_attrs
    return StoredLearned(max(t.number for t in done), tuple(ua["features"]),
                         WeightModelConfig(**ua["config"]), tuple(ua["global_weights"]),
                         dict(ua["model"]), int(ua["best_epoch"]), int(ua["epochs_run"]))


def store_learned(storage: str, study_name: str, learned: LearnedWeights,
                  config: WeightModelConfig, global_weights: np.ndarray,
                  evaluation: LearnedEvaluation) -> int:
    """Add the trained model and its held-out evaluation as a trial of ``<study>/learned``
    (made if missing); returns the trial's number."""
    study = optuna.create_study(storage=storage, study_name=learned_study_name(study_name),
                                direction="maximize", load_if_exists=True)
    if ATTR_LEARNED_OF not in study.user_attrs:
        name_metrics(study, ["objective"])
        study.set_user_attr(ATTR_LEARNED_OF, {"study": study_name})
    est, m = evaluation.estimate, evaluation.estimate.metric()
    attrs = {
        "features": list(learned.features), "config": dataclasses.asdict(config),
        "global_weights": [float(w) for w in global_weights], "model": learned.spec(),
        "best_epoch": int(learned.best_epoch), "epochs_run": learned.epochs_run,
        "ci_low": float(est.low[0, m]), "ci_high": float(est.high[0, m]),
        "n_requests": est.n, "guard": evaluation.decision.to_dict(),
        "infeasible": evaluation.broken,
        **{f"metric:{metric}": float(est.value[0, i]) for i, metric in enumerate(est.metrics)},
    }
    study.add_trial(optuna.trial.create_trial(value=float(est.value[0, m]), user_attrs=attrs))
    return max(t.number for t in study.get_trials(deepcopy=False))


@dataclass(frozen=True)
class PersonaliseOutcome:
    """What ``search personalise`` did.

    Args:
        trial_number: the trial of ``<study>/learned`` that holds the result.
        reused: True when that trial was reused (no training).
        evaluation: the held-out evaluation.
        best_epoch: the epoch early stopping kept.
        epochs_run: the epochs trained.
        out: the export folder written, or None.
    """

    trial_number: int
    reused: bool
    evaluation: LearnedEvaluation
    best_epoch: int
    epochs_run: int
    out: Path | None


def _check_features(ws: Workspace | StreamedWorkspace, features: Sequence[str]) -> None:
    """Refuse an unknown or item-level feature (on a streamed log: on its first chunk),
    and a streamed study whose interval cannot judge the model."""
    if isinstance(ws, StreamedWorkspace):
        check_bootstrap(ws)
        first = next(iter(ws.chunks(SEARCH).split_chunks(features=True)), None)
        if first is not None:
            feature_matrix(first.traffic, features)
        return
    feature_matrix(ws.parts[SEARCH], features)


def personalise(storage: str, study_name: str, ws: Workspace | StreamedWorkspace,
                global_weights: np.ndarray,
                pinned: str | None, features: Sequence[str] | None,
                overrides: Mapping[str, Any], retrain: bool, out: Path | None,
                overwrite: bool, echo: Callable[[str], None],
                progress: Callable[[int, float, float], None] | None = None
                ) -> PersonaliseOutcome:
    """Train (or reuse) the weight model of ``study_name``, judge it and export it.

    Args:
        storage: the database URL.
        study_name: the finished global study.
        ws: its workspace.
        global_weights: ``[S]`` its pick, the model's start.
        pinned: the space's pinned task (held fixed by the model), or None.
        features: the model's inputs; None: the stored result's.
        overrides: hyperparameters given (fields of :class:`WeightModelConfig`); the rest
            are the stored result's (when reused) or the defaults.
        retrain: train even when a stored result fits.
        out: the export folder, or None.
        overwrite: replace an existing ``out``.
        echo: says one line on stderr.
        progress: called with ``(epoch, train, validation)`` surrogates during training.

    Raises:
        ValueError: an unknown feature, hyperparameters that differ from the stored result's
            without ``retrain``, an ``out`` that exists without ``overwrite``, a log the
            surrogate cannot train on, or an export that does not reproduce the model.
    """
    if out is not None and out.exists() and not overwrite:
        raise ValueError(f"--out {out} exists; give --force to overwrite it")
    stored = stored_learned(storage, study_name)
    if features is None:
        if stored is None:
            raise ValueError(f"study {study_name!r} has no learned weight model yet; give "
                             "--features f1,f2 (request-level log features) to train one")
        features = stored.features
    features = tuple(f.removeprefix("feature_") for f in features)
    if not features or len(set(features)) != len(features):
        raise ValueError(f"--features {','.join(features)!r}: give distinct feature names, "
                         "e.g. --features user_activity,user_segment")
    _check_features(ws, features)  # unknown features refused before training
    base = stored.config if stored is not None else WeightModelConfig()
    config = dataclasses.replace(base, **dict(overrides))
    reuse = stored is not None and not retrain
    if stored is not None and reuse:
        differs = [f"--{k.replace('_', '-')}" for k, v in overrides.items()
                   if getattr(stored.config, k) != v]
        if stored.features != features:
            differs.insert(0, "--features")
        if differs:
            raise ValueError(f"the stored weight model (trial {stored.trial_number} of study "
                             f"{learned_study_name(study_name)!r}) was trained with other "
                             f"{', '.join(differs)}; give --retrain to train a new one")
        if not np.allclose(stored.global_weights, global_weights, rtol=1e-9):
            echo("the global pick changed since the stored weight model was trained; "
                 "training again")
            reuse = False
    if stored is not None and reuse:
        learned = LearnedWeights.from_spec(stored.spec)
        evaluation = evaluate_learned(ws, learned.weights, features, global_weights)
        number, best_epoch, epochs_run = stored.trial_number, stored.best_epoch, stored.epochs_run
    else:
        tasks = ws.score_tasks
        learned = train_weight_model(log_arrays(ws, SEARCH, features), global_weights,
                                     features, tasks, config,
                                     None if pinned is None else tasks.index(pinned),
                                     progress)
        evaluation = evaluate_learned(ws, learned.weights, features, global_weights)
        number = store_learned(storage, study_name, learned, config, global_weights,
                               evaluation)
        best_epoch, epochs_run = learned.best_epoch, learned.epochs_run
    if out is not None:
        assert evaluation.rows is not None  # evaluate_learned read the held-out inputs
        write_export(out, learned, evaluation, ws, global_weights, evaluation.rows, overwrite,
                     {"study": study_name, "trial": number})
        study = optuna.load_study(study_name=learned_study_name(study_name), storage=storage)
        study.set_user_attr(ATTR_LEARNED_EXPORT, {
            "trial": number, "path": str(out.resolve()),
            "personalised": evaluation.decision.personalised})
    return PersonaliseOutcome(number, reuse, evaluation, best_epoch, epochs_run, out)


def learned_compare(ws: Workspace | StreamedWorkspace, storage: str, study_name: str,
                    global_weights: np.ndarray, split: str = HOLDOUT
                    ) -> LearnedEvaluation | None:
    """The stored weight model's policy vs the global pick vs the control on ``split``
    (None: the study has no learned model); the model's weights come from its stored JSON,
    so no torch is needed."""
    stored = stored_learned(storage, study_name)
    if stored is None:
        return None
    return evaluate_learned(ws, stored.weights, stored.features, global_weights, split)
