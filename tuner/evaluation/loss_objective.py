"""Loss-weight search: every trial trains the ranker, scores the log, and tunes the fusion.

The costly outer loop of the product. A trial's loss-weight vector (one weight per ranker
task, one pinned to 1: Adam's steps barely change when every loss is scaled alike) trains
the ranker on the ``train`` split of the log (early stopping on ``valid``), from scratch
or warm from a base checkpoint for a fixed number of steps; the trained ranker scores
every logged candidate; then

- ``space = "loss"``: the control fusion weights are evaluated on those scores;
- ``space = "joint"``: a short inner CEM (fixed seed, so every loss trial gets the same
  common random numbers) tunes the fusion weights on the ``search`` split, and the trial
  takes the estimate of its final mean.

The trial's value is that fused objective with its interval; its user attrs hold the
ranker's validation AUC per task (``auc:<task>``), the fusion weights used
(``fusion:<task>``) and the ranker's cache key (``ranker``), so ``search history
--trials`` shows which loss weights buy which business result.

Trained rankers and their score tables are cached (:mod:`tuner.evaluation.ranker_cache`): a
repeated vector never retrains, an interrupted generation resumes without retraining what
it finished, and many workers share one cache folder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ranker.progress import progress_bar
from simulator.fusion import make_fusion
from tuner.evaluation.loss_study import LOSS_SEARCH, is_loss_study
from tuner.evaluation.objective import FusionObjective
from tuner.evaluation.ranker_cache import RankerCache, RankerRun
from tuner.evaluation.search_data import SearchSettings, Workspace
from tuner.search_config import SearchConfig, parse_search_config
from tuner.space import FusionSpace
from tuner.strategies import CEM, CEMConfig
from tuner.study import TrialResult

__all__ = [
    "LOSS_SEARCH",
    "LossObjective",
    "fusion_space",
    "is_loss_study",
    "loss_space",
    "study_settings",
]

def study_settings(config: SearchConfig) -> dict[str, Any]:
    """What a loss-weight study stores: the resolved search file."""
    return {LOSS_SEARCH: dict(config.raw)}


def config_of(settings: Mapping[str, Any]) -> SearchConfig:
    """The search file a loss-weight study stored."""
    return parse_search_config(settings[LOSS_SEARCH])


def loss_space(config: SearchConfig) -> FusionSpace:
    """The loss-weight box (parameters ``loss_<task>``) over the ranker's tasks."""
    assert config.ranker is not None
    tasks = config.ranker.task_names
    box = config.loss
    return FusionSpace(tasks, box.pinned or tasks[0], box.low, box.high, prefix="loss_")


def fusion_space(config: SearchConfig, tasks: Sequence[str]) -> FusionSpace:
    """The fusion-weight box over the score tasks."""
    box = config.fusion
    pinned = box.pinned or tasks[0]
    if pinned not in tasks:
        raise ValueError(f"[search.fusion] pinned {pinned!r} is not a score task; valid: "
                         f"{list(tasks)}")
    return FusionSpace(tuple(tasks), pinned, box.low, box.high)


def control_weights(config: SearchConfig, space: FusionSpace) -> np.ndarray:
    """``[T]`` control fusion weights (``[search.fusion] control``; default all 1), checked."""
    control = config.fusion.control
    if control is None:
        return np.ones(len(space.tasks))
    unknown = [t for t in control if t not in space.tasks]
    missing = [t for t in space.tasks if t not in control]
    if unknown or missing:
        raise ValueError(f"[search.fusion] control needs one weight per score task "
                         f"{list(space.tasks)}; unknown {unknown}, missing {missing}")
    w = np.array([control[t] for t in space.tasks])
    make_fusion(config.formula).validate_weights(w, space.tasks)
    x = space.from_weights(w)
    if not space.contains(x):
        raise ValueError(f"[search.fusion] control {dict(control)} lies outside the box "
                         f"[{space.low}, {space.high}] relative to pinned {space.pinned!r}")
    return w


# --- the objective of a loss-weight trial ---------------------------------------------------


class LossObjective:
    """``W [M, T]`` loss-weight vectors (ranker task order) -> one ``TrialResult`` each.

    Row-wise and deterministic (same vector, same result), as resumable rounds need.

    Args:
        config: the search file; ``space`` must be ``"loss"`` or ``"joint"``.
        cache: the ranker cache (default: one over ``config``).
        progress: a bar over the trials of each call, and training bars.
    """

    def __init__(self, config: SearchConfig, cache: RankerCache | None = None,
                 progress: bool = False) -> None:
        if config.space not in ("loss", "joint"):
            raise ValueError(f"LossObjective needs space 'loss' or 'joint', got {config.space!r}")
        self.config = config
        self.cache = cache if cache is not None else RankerCache(config, progress=False)
        self.progress = progress
        self.tasks = loss_space(config).tasks

    def __call__(self, weights: np.ndarray) -> list[TrialResult]:
        W = np.atleast_2d(np.asarray(weights, dtype=float))
        out = []
        for row in progress_bar(W, desc="loss trials", unit="ranker", enabled=self.progress,
                                leave=False):
            run = self.cache.run(dict(zip(self.tasks, row, strict=True)))
            out.append(self.evaluate_run(run))
        return out

    def workspace(self, run: RankerRun) -> Workspace:
        """The replays of ``run``'s scores, with the search's settings."""
        table = run.scores_table()
        return Workspace(self.settings(run, table.tasks), self.cache.traffic, table)

    def settings(self, run: RankerRun, score_tasks: Sequence[str]) -> SearchSettings:
        c = self.config
        fspace = fusion_space(c, score_tasks)
        assert c.ranker is not None
        return SearchSettings(
            logs=c.logs, scores=str(run.scores), objective=dict(c.objective),
            estimator=c.estimator, estimator_params=dict(c.estimator_params),
            formula=c.formula, splits=dict(c.splits),
            split_seed=c.split_seed, conditional=c.ranker.conditional,
            control=control_weights(c, fspace).tolist(), n_bootstrap=c.n_bootstrap,
            guardrails=dict(c.guardrails), data_fingerprint=self.cache.traffic.fingerprint(),
            model_fingerprint=run.model_fingerprint, interval=c.interval,
            examination=None if c.examination is None else list(c.examination))

    def fusion_pick(self, ws: Workspace) -> np.ndarray:
        """``[T]`` fusion weights of a trial: control (``loss``) or the inner CEM's mean."""
        fspace = fusion_space(self.config, ws.score_tasks)
        control = control_weights(self.config, fspace)
        if self.config.space == "loss":
            return control
        box = self.config.fusion
        cem = CEM(fspace, CEMConfig(population=box.population,
                                    elite_fraction=box.elite_fraction),
                  self.config.seed, init_mean=control)
        objective = FusionObjective.for_workspace(ws)
        for g in range(box.rounds):
            X = cem.ask(g)
            results = objective(fspace.matrix_to_weights(X))
            values = np.array([r.value if not r.infeasible else np.nan for r in results])
            cem.tell(g, X, values)
        return fspace.matrix_to_weights(cem.pick()[None])[0]

    def evaluate_run(self, run: RankerRun) -> TrialResult:
        """The trial result of one trained ranker."""
        ws = self.workspace(run)
        fusion = self.fusion_pick(ws)
        result = FusionObjective.for_workspace(ws)(fusion[None])[0]
        attrs: dict[str, Any] = {"ranker": run.key}
        attrs.update({f"auc:{t}": m["auc"] for t, m in run.valid_metrics.items()})
        attrs.update({f"fusion:{t}": float(w) for t, w in zip(ws.score_tasks, fusion,
                                                               strict=True)})
        return dataclasses.replace(result, attrs=attrs)
