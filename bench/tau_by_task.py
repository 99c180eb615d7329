"""Why Kendall tau is low on the KuaiRand world: per-task ordering against the objective's.

One log of ``--requests`` requests, ``--vectors`` weight vectors drawn uniformly from the
tuner's search box; for each task and for the weighted objective, prints the Kendall tau
between SNIPS (and IPS) estimates and the world's true values, the spread of the true
values over the vectors and the estimates' relative error (mean: a shock shared by all
vectors of the log; sd: what reorders them). Baseline: IPS beside SNIPS in the same run.

    python bench/tau_by_task.py --requests 160000
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
import estimator_quality as eq  # noqa: E402

from simulator.intervals import point_values  # noqa: E402
from simulator.worlds._kuairand import load_response_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=160_000)
    parser.add_argument("--vectors", type=int, default=40)
    parser.add_argument("--seed", type=int, default=300)
    args = parser.parse_args()
    log = eq.make_log("kuairand", args.seed, args.requests, load_response_model())
    tasks = log.world.tasks
    W = np.random.default_rng([args.seed, 5]).uniform(0.0, 4.0, (args.vectors, len(tasks)))
    terms = eq.seed_terms(log, W)
    objective = eq.OBJECTIVES["kuairand"]
    print(f"# {args.requests:,} requests, {args.vectors} vectors, objective {objective}\n")
    print("| target | estimator | Kendall tau | truth spread (sd/mean) | rel. error mean | "
          "rel. error sd |")
    print("|---|---|---|---|---|---|")
    targets = [(t, {t: 1.0}) for t in tasks] + [("objective", objective)]
    for label, weights in targets:
        truth = eq.true_objective(log, W, weights)
        combine = eq.objective_matrix(tasks, weights)
        for name in ("snips", "ips"):
            value = point_values(terms[name], combine)[:, -1]  # type: ignore[arg-type]
            rel = (value - truth) / truth
            tau = stats.kendalltau(value, truth).statistic
            print(f"| {label} | {name} | {tau:.3f} | {truth.std() / truth.mean():.4f} | "
                  f"{rel.mean():+.4f} | {rel.std():.4f} |")


if __name__ == "__main__":
    main()
