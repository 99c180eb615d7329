"""What ``search run --until converged`` saves (rounds) and costs (true value).

Each seed runs the demo on the synthetic marketplace (``tuner.demo.run_demo``) for
``--rounds`` CEM rounds, then asks :class:`tuner.study.ConvergenceRule` where a converged
run would have stopped. The pick of that run (the strategy after its last round) and the
pick after all rounds are scored by the world's exact truth on the held-out requests;
``cost`` = (true objective of the full run's pick - converged pick's) / full run's.

Run: ``python bench/convergence_savings.py [--seeds 3] [--rounds 20] [--requests 20000]
[--patience 3] [--out runs/convergence]`` (prints a markdown table).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from simulator.worlds import MarketplaceConfig, MarketplaceWorld
from tuner.demo import DemoConfig, _true_metrics, run_demo
from tuner.evaluation.search_data import HOLDOUT, SearchSettings, Workspace
from tuner.study import ConvergenceRule, load_search, replayed_strategy


def one_seed(seed: int, args: argparse.Namespace) -> dict[str, float]:
    config = DemoConfig(out_dir=Path(args.out) / f"seed{seed}", seed=seed,
                        n_requests=args.requests, rounds=args.rounds, epochs=args.epochs,
                        population=args.population)
    result = run_demo(config, say=lambda s: None, progress=False)
    study, search = load_search(result.storage, config.study_name)
    space = search.space
    ws = Workspace(SearchSettings.from_dict(search.settings))
    world = MarketplaceWorld(MarketplaceConfig(n_requests=args.requests, seed=seed))
    final, _ = replayed_strategy(study, search)
    # the pick after round g is the mean that generated round g + 1
    picks = [np.array([r.mean[t] for t in space.free_tasks]) for r in result.rounds[1:]]
    picks.append(np.asarray(final.pick()))

    def true_objective(x: np.ndarray) -> float:
        w = space.matrix_to_weights(x[None, :])[0]
        truth = _true_metrics(world, ws.parts[HOLDOUT], ws.table, ws.score_tasks, w)
        return sum(config.objective[t] * v for t, v in truth.items())

    stop = ConvergenceRule(args.patience).stop(result.rounds)
    g = stop.round if stop is not None else len(result.rounds) - 1
    full, conv = true_objective(picks[-1]), true_objective(picks[g])
    return {"seed": seed, "rounds": len(result.rounds), "stop": g + 1,
            "saved": len(result.rounds) - (g + 1), "true_full": full, "true_conv": conv,
            "cost_pct": 100 * (full - conv) / full}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--requests", type=int, default=20_000)
    p.add_argument("--population", type=int, default=32)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--out", default="runs/convergence")
    args = p.parse_args()
    print("| seed | rounds run | converged run stops after | rounds saved | true objective "
          "(all rounds) | true objective (converged) | cost |")
    print("|---|---|---|---|---|---|---|")
    for seed in range(args.seeds):
        r = one_seed(seed, args)
        print(f"| {seed} | {r['rounds']} | {r['stop']} | {r['saved']} | {r['true_full']:.5f} "
              f"| {r['true_conv']:.5f} | {r['cost_pct']:+.2f}% |", flush=True)


if __name__ == "__main__":
    main()
