"""``fusiontune demo --online``: live CEM rounds with the world playing the experiment
platform.

The offline demo's first steps (world -> logs -> ranker -> score table) run as usual (with
one small offline round); then a live study ``live`` in the same database runs
``rounds`` rounds exactly as a team would with ``search ask`` / ``search tell``: each round's
groups are written as ``live-round<N>.json``/``.csv``, the world serves every group (and
the control) on fresh requests scored by the demo's ranker
(:func:`simulator.online.run_groups`), the results are written as
``live-round<N>-results.csv`` and told back. At the end the live groups' online lifts sit
beside their offline estimates, with the proxy's calibration and the true value of CEM's
final mean against the control.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simulator.fusion import make_fusion
from simulator.online import OnlineGroups, run_groups, true_values
from simulator.worlds import KuaiRandConfig, KuaiRandWorld, MarketplaceConfig, MarketplaceWorld
from tuner.demo import DemoConfig, run_demo
from tuner.evaluation.objective import FusionObjective
from tuner.evaluation.scores import ScoreTable
from tuner.evaluation.search_data import SearchSettings, Workspace, control_weights
from tuner.strategies import CEMConfig
from tuner.study import create_or_load_study, read_spec, replayed_strategy
from tuner.study._live import ask_round, live_rounds, tell_results

__all__ = ["OnlineDemoConfig", "run_online_demo"]


@dataclass(frozen=True)
class OnlineDemoConfig:
    """The live part of the demo.

    Args:
        rounds: live rounds.
        groups: experiment groups a round (besides the control).
        prescreen: candidates pre-screened on the logs a round (0: none).
        users, requests_per_user: size of every group.
    """

    rounds: int = 4
    groups: int = 8
    prescreen: int = 256
    users: int = 1000
    requests_per_user: int = 10


def run_online_demo(config: DemoConfig, live: OnlineDemoConfig,
                    say: Callable[[str], None] = print, progress: bool = True) -> dict[str, Any]:
    """Run the offline demo's data steps, then ``live.rounds`` live rounds; a JSON-able
    summary (rounds, groups, calibration, true values of the pick and the control)."""
    from ranker.checkpoint import load_checkpoint
    from tuner.cli._live import _write_round, read_results

    base = run_demo(dataclasses.replace(config, rounds=1, population=4), say=say,
                    progress=progress)
    out = Path(config.out_dir)
    tick = time.perf_counter()
    groups = OnlineGroups(live.users, live.requests_per_user)
    pool_n = (live.groups + 1) * groups.requests
    world: MarketplaceWorld | KuaiRandWorld
    if config.world == "kuairand":
        world = KuaiRandWorld(KuaiRandConfig(n_requests=config.n_requests + pool_n,
                                             seed=config.seed))
    else:
        world = MarketplaceWorld(MarketplaceConfig(n_requests=config.n_requests + pool_n,
                                                   seed=config.seed))
    # the same world's later requests: fresh traffic the logs never saw
    pool = world.generate().take(np.arange(config.n_requests, config.n_requests + pool_n))
    model, _ = load_checkpoint(out / "ranker.pt")
    from tuner.evaluation.ranker_scoring import score_traffic

    raw = read_spec(create_or_load_study(base.storage, config.study_name, create=False))
    settings = SearchSettings.from_dict(raw.settings)
    ws = Workspace(settings)
    table: ScoreTable = score_traffic(model, pool)
    pool_scores = table.aligned(pool, ws.score_tasks)
    say(f"[live] {pool_n:,} fresh requests of the world scored by the ranker, "
        f"{live.groups} groups of {live.users} users x {live.requests_per_user} requests")
    study = create_or_load_study(base.storage, "live", raw.space,
                                 CEMConfig(population=live.groups), config.seed,
                                 settings=raw.settings, init_mean=np.asarray(raw.init_mean))
    search = read_spec(study)
    offline = FusionObjective.for_workspace(ws)
    fusion = make_fusion(settings.formula)
    objective = dict(settings.objective)
    for g in range(live.rounds):
        round_ = ask_round(study, search, live.prescreen, offline)
        _write_round(round_, out / f"live-round{round_.round}.json")
        W = np.array([list(grp.weights.values()) for grp in round_.groups])
        got = run_groups(world, pool, pool_scores, fusion, W, groups, seed=config.seed * 97 + g,
                         objective=objective)
        path = out / f"live-round{round_.round}-results.csv"
        _write_results(path, [grp.group for grp in round_.groups], got, list(objective))
        tell_results(study, search, read_results(path, list(objective)), str(path))
        summary = study.user_attrs[f"fusiontune:live_summary:{round_.round}"]
        best = summary["lifts"][summary["best"]]
        say(f"[live] round {round_.round}: best group {summary['best']} online lift "
            f"{100 * best['value']:+.2f}% [{100 * best['low']:+.2f}, {100 * best['high']:+.2f}]")
    rows, cal = live_rounds(study)
    strategy, _ = replayed_strategy(study, search)
    pick = search.space.matrix_to_weights(strategy.pick()[None])[0]
    control = control_weights(ws)
    w_obj = np.array([objective.get(t, 0.0) for t in world.tasks])
    truth = true_values(world, pool, pool_scores, fusion, np.vstack([control, pick])) @ w_obj
    return {
        "storage": base.storage, "study": "live",
        "groups": [{"round": r.round, "group": r.group,
                    "online_lift": None if r.online is None else r.online.value,
                    "offline_lift": r.offline_lift} for r in rows],
        "calibration": {**cal.to_dict(), "verdict": cal.verdict()},
        "pick": dict(zip(ws.score_tasks, map(float, pick), strict=True)),
        "true_objective": {"control": float(truth[0]), "pick": float(truth[1]),
                           "lift": float(truth[1] / truth[0] - 1)},
        "seconds": time.perf_counter() - tick,
    }


def _write_results(path: Path, ids: list[str], got: list[Any], metrics: list[str]) -> None:
    """What the platform exports: group, users, and each metric's mean and se."""
    import csv

    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["group", "users", *[f"{m}_{k}" for m in metrics for k in ("mean", "se")]])
        for gid, r in zip(ids, got, strict=True):
            w.writerow([gid, r.units, *[repr(x) for m in metrics for x in (r.mean[m], r.se[m])]])
