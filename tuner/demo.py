"""The whole loop on the embedded default world, end to end.

world -> logs (Parquet) -> MMoE ranker -> score table (Parquet) -> CEM rounds
over fusion weights, every trial in a SQLite study -> A/B report of the pick
against the control weights on held-out requests, with the world's truth ->
exported weight vector (JSON).

The log is split by request: the ranker trains on one part (and stops early on
another), the search sees a third, and the exported vector is judged on a
fourth it was not selected on, so the winner's curse of the search split does
not leak into the reported value.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ranker import (
    MMoEConfig,
    TaskMetrics,
    TaskSpec,
    TrainConfig,
    build_mmoe,
    evaluate,
    save_checkpoint,
    train,
)
from simulator.fusion import make_fusion
from simulator.logs import LoggedTraffic
from simulator.policies import TopKPolicy
from simulator.report import ABReport
from simulator.worlds import KuaiRandConfig, KuaiRandWorld, MarketplaceConfig, MarketplaceWorld
from tuner.evaluation.objective import FusionObjective
from tuner.evaluation.ranker_scoring import default_feature_specs, ranker_rows, score_traffic
from tuner.evaluation.scores import ScoreTable
from tuner.evaluation.search_data import (
    HOLDOUT,
    SEARCH,
    SearchSettings,
    Workspace,
    resolve,
    split_log,
)
from tuner.picks.export import ExportedWeights
from tuner.picks.picking import export_pick, pick_weights
from tuner.space import FusionSpace
from tuner.strategies import CEMConfig
from tuner.study import RoundSummary, SearchSpec, create_or_load_study, run_rounds

__all__ = ["DemoConfig", "DemoResult", "Pick", "run_demo"]

RANKER_TASKS = (TaskSpec("click"), TaskSpec("conversion", sample_space="after:click"),
                TaskSpec("like"))
KUAIRAND_RANKER_TASKS = (TaskSpec("click"), TaskSpec("long_view", sample_space="after:click"),
                         TaskSpec("like"), TaskSpec("profile_enter"))
WORLDS = ("marketplace", "kuairand")
DEFAULT_OBJECTIVES = {
    "marketplace": {"click": 1.0, "conversion": 10.0, "like": 5.0},
    "kuairand": {"click": 1.0, "long_view": 2.0, "like": 20.0, "profile_enter": 20.0},
}
# fractions of requests: ranker train / ranker validation / search / held-out
SPLITS = {"train": 0.4, "valid": 0.1, "search": 0.25, "holdout": 0.25}


@dataclass(frozen=True)
class DemoConfig:
    """Settings of the demo; every default is the embedded one.

    Args:
        out_dir: folder for logs, scores, checkpoint, study and export.
        seed: seeds the world, the split, the ranker and the search.
        n_requests: requests the world logs.
        rounds: CEM generations.
        population: weight vectors per generation.
        elite_fraction: share of each generation refit on.
        estimator: off-policy estimator name.
        objective: task -> weight of the business objective.
        epochs: ranker training epochs (early stopping may end sooner).
        study_name: name of the study in the database.
        world: ``"marketplace"`` (synthetic, embedded) or ``"kuairand"`` (fitted on
            the real KuaiRand-Pure slice, which must be at ``../shared/data`` or
            ``$FUSIONTUNE_KUAIRAND``).
        guardrails: metric -> largest allowed drop below control (a fraction).
        interval: how 95% intervals are made (``simulator.intervals.INTERVALS``).
        estimator_params: the estimator's hyperparameters (``{"clip": 50.0}``).
    """

    out_dir: Path = Path("fusiontune-demo")
    seed: int = 0
    n_requests: int = 40_000
    rounds: int = 8
    population: int = 32
    elite_fraction: float = 0.25
    estimator: str = "snips"
    objective: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_OBJECTIVES["marketplace"]))
    epochs: int = 4
    study_name: str = "demo"
    world: str = "marketplace"
    guardrails: Mapping[str, float] = field(default_factory=dict)
    interval: str = "bootstrap"
    estimator_params: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.world not in WORLDS:
            raise ValueError(f"unknown world {self.world!r}; valid: {list(WORLDS)}")


@dataclass(frozen=True)
class Pick:
    """A candidate for export with its estimates and (in a world) its truth."""

    name: str
    weights: np.ndarray
    search_values: dict[str, float]
    holdout: ABReport
    truth: dict[str, float]

    def true_objective(self, objective: Mapping[str, float]) -> float:
        return float(sum(w * self.truth[t] for t, w in objective.items()))


@dataclass(frozen=True)
class DemoResult:
    """What the demo produced."""

    rounds: list[RoundSummary]
    ranker_metrics: dict[str, TaskMetrics]
    picks: list[Pick]
    exported: ExportedWeights
    export_path: Path
    storage: str
    control_truth: dict[str, float]
    timings: dict[str, float]


def run_demo(config: DemoConfig, say: Callable[[str], None] = print,
             progress: bool = True) -> DemoResult:
    """Run the whole loop; see the module docstring."""
    timings: dict[str, float] = {}
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tick = time.perf_counter()

    # 1. world -> logs
    world: MarketplaceWorld | KuaiRandWorld
    ranker_tasks: tuple[TaskSpec, ...]
    if config.world == "kuairand":
        say("[0/6] loading the response model fitted on KuaiRand-Pure (fits once, cached)")
        world = KuaiRandWorld(KuaiRandConfig(n_requests=config.n_requests, seed=config.seed))
        ranker_tasks, conditional = KUAIRAND_RANKER_TASKS, {"long_view": "click"}
    else:
        world = MarketplaceWorld(MarketplaceConfig(n_requests=config.n_requests,
                                                   seed=config.seed))
        ranker_tasks, conditional = RANKER_TASKS, {"conversion": "click"}
    traffic = world.generate()
    log_path = traffic.write(out / "logs.parquet")
    say(f"[1/6] world: {traffic.n_requests:,} requests x {traffic.n_candidates} candidates, "
        f"slate {traffic.slate_size}, tasks {list(traffic.tasks)} -> {log_path}")
    parts = split_log(traffic, SPLITS, config.seed)
    timings["world"] = time.perf_counter() - tick

    # 2. ranker
    tick = time.perf_counter()
    specs = default_feature_specs(traffic)
    model = build_mmoe(specs, ranker_tasks, MMoEConfig(), seed=config.seed)
    result = train(model, ranker_rows(parts["train"], ranker_tasks),
                   ranker_rows(parts["valid"], ranker_tasks),
                   TrainConfig(epochs=config.epochs, seed=config.seed), progress=progress)
    replay_parts = LoggedTraffic.concatenate([parts[SEARCH], parts[HOLDOUT]])
    test_rows = ranker_rows(replay_parts, ranker_tasks)
    metrics = evaluate(result.model, test_rows)
    model_fp = save_checkpoint(out / "ranker.pt", result.model, {
        "data_fingerprint": traffic.fingerprint(), "test_metrics": metrics,
        "splits": SPLITS, "seed": config.seed})
    n_train = int(parts["train"].shown.sum())
    say(f"[2/6] ranker: MMoE trained on {n_train:,} impressions, best epoch "
        f"{result.best_epoch}; test on the search + held-out impressions:")
    for task, m in metrics.items():
        say(f"      {task:<11} AUC {m.auc:.4f}  logloss {m.logloss:.4f}  "
            f"calibration {m.calibration:.3f}  n={m.n:,}")
    timings["ranker"] = time.perf_counter() - tick

    # 3. score every logged candidate
    tick = time.perf_counter()
    table = score_traffic(result.model, traffic)
    score_path = table.write(out / "scores.parquet")
    say(f"[3/6] scored {traffic.n_requests * traffic.n_candidates:,} candidates -> {score_path}")
    timings["score"] = time.perf_counter() - tick

    # 4. CEM rounds on the search split
    tick = time.perf_counter()
    control = np.asarray(world.config.logging_weights, dtype=float)
    settings = SearchSettings(
        logs=resolve(log_path), scores=resolve(score_path), objective=dict(config.objective),
        estimator=config.estimator, estimator_params=dict(config.estimator_params),
        splits=SPLITS, split_seed=config.seed, conditional=conditional, control=control.tolist(),
        guardrails=dict(config.guardrails), interval=config.interval,
        data_fingerprint=traffic.fingerprint(), model_fingerprint=model_fp)
    ws = Workspace(settings, traffic, table)
    space = FusionSpace(tasks=ws.score_tasks, pinned="click", low=0.0, high=4.0)
    cem = CEMConfig(population=config.population, elite_fraction=config.elite_fraction)
    storage = f"sqlite:///{(out / 'study.db').resolve()}"
    study = create_or_load_study(storage, config.study_name, space, cem, config.seed,
                                 settings=settings.to_dict(),
                                 init_mean=space.from_weights(control))
    search = SearchSpec.new(space, cem, config.seed, space.from_weights(control),
                            settings.to_dict())
    objective = FusionObjective.for_workspace(ws)
    rounds = run_rounds(study, search, objective, until=config.rounds, progress=progress)
    say(f"[4/6] CEM: {config.rounds} rounds x {config.population} trials in {storage}")
    timings["search"] = time.perf_counter() - tick

    # 5. picks judged on held-out requests, with the truth
    tick = time.perf_counter()
    picks = []
    exports = {}
    for name in ("strategy", "best_trial"):
        w, number = pick_weights(study, search, name)
        exported, report, search_values = export_pick(ws, config.study_name, w, name, number,
                                                      space.pinned)
        truth = _true_metrics(world, ws.parts[HOLDOUT], table, ws.score_tasks, w)
        exported = dataclasses.replace(exported, extra={**exported.extra, "true_holdout": truth})
        exports[name] = exported
        picks.append(Pick(name, w, search_values, report, truth))
    control_truth = _true_metrics(world, ws.parts[HOLDOUT], table, ws.score_tasks, control)
    say(f"[5/6] picks: CEM's final mean and the best single trial, judged on "
        f"{picks[0].holdout.n_requests:,} held-out requests against the control")
    timings["report"] = time.perf_counter() - tick

    # 6. export the denoised pick
    export_path = exports["strategy"].write(out / "weights.json")
    say(f"[6/6] export: CEM's final mean -> {export_path}")
    return DemoResult(rounds, metrics, picks, exports["strategy"], export_path, storage,
                      control_truth, timings)


def _true_metrics(world: MarketplaceWorld | KuaiRandWorld, part: LoggedTraffic, table: ScoreTable,
                  tasks: tuple[str, ...], weights: np.ndarray) -> dict[str, float]:
    fusion = make_fusion("multiplicative")
    fused = fusion.fuse(fusion.transform(table.aligned(part, tasks)), weights[None])
    exposure = TopKPolicy(part.slate_size).exposure(fused, world.examination)
    value = world.true_value(part, exposure)[0]
    return {t: float(v) for t, v in zip(world.tasks, value, strict=True)}


def as_dict(result: DemoResult) -> dict[str, Any]:
    """JSON-able summary of a demo run."""
    return {
        "rounds": [r.to_dict() for r in result.rounds],
        "ranker": {t: dataclasses.asdict(m) for t, m in result.ranker_metrics.items()},
        "export": str(result.export_path),
        "storage": result.storage,
        "control_truth": result.control_truth,
        "timings_s": result.timings,
    }
