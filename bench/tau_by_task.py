"""Why Kendall tau is low on the KuaiRand world: per-task ordering against the objective's.

One log of ``--requests`` requests, ``--vectors`` weight vectors drawn uniformly from the
tuner's search box; for each task and for the weighted objective, prints the Kendall tau
between SNIPS (and IPS) estimates and the world's true values, the spread of the true
values over the vectors and the estimates' relative error (mean: a shock shared by all
vectors of the log; sd: what reorders them). Baseline: IPS beside SNIPS in the same run.

The last columns repeat SNIPS on the same log with every observed label replaced by
its expectation given the slot it was shown in (``examination[slot] * E[label |
examined]``): that removes the labels' own Bernoulli noise and keeps the noise of which
candidates the logger showed. The share of the error variance that disappears is the
share no estimator fed with these labels can remove (a reward model only removes the
other part).

    python bench/tau_by_task.py --requests 160000
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
import estimator_quality as eq  # noqa: E402

from simulator.intervals import point_values  # noqa: E402
from simulator.worlds._kuairand_fit import load_response_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=160_000)
    parser.add_argument("--vectors", type=int, default=40)
    parser.add_argument("--seed", type=int, default=300)
    args = parser.parse_args()
    log = eq.make_log("kuairand", args.seed, args.requests, load_response_model())
    tasks = log.world.tasks
    W = np.random.default_rng([args.seed, 5]).uniform(0.0, 4.0, (args.vectors, len(tasks)))
    terms = eq.seed_terms(log, W, ["snips", "ips"])
    smooth = eq.seed_terms(_expected_labels(log), W, ["snips"])["snips"]
    objective = eq.OBJECTIVES["kuairand"]
    print(f"# {args.requests:,} requests, {args.vectors} vectors, objective {objective}\n")
    print("| target | estimator | Kendall tau | truth spread (sd/mean) | rel. error mean | "
          "rel. error sd | tau, no label noise | rel. error sd, no label noise | "
          "label-noise share of error variance |")
    print("|---|---|---|---|---|---|---|---|---|")
    targets = [(t, {t: 1.0}) for t in tasks] + [("objective", objective)]
    for label, weights in targets:
        truth = eq.true_objective(log, W, weights)
        combine = eq.objective_matrix(tasks, weights)
        quiet = point_values(smooth, combine)[:, -1]  # type: ignore[arg-type]
        quiet_sd = ((quiet - truth) / truth).std()
        for name in ("snips", "ips"):
            value = point_values(terms[name], combine)[:, -1]  # type: ignore[arg-type]
            rel = (value - truth) / truth
            tau = stats.kendalltau(value, truth).statistic
            extra = "| | |"
            if name == "snips":
                share = 1.0 - quiet_sd ** 2 / rel.std() ** 2
                extra = (f"| {stats.kendalltau(quiet, truth).statistic:.3f} | "
                         f"{quiet_sd:.4f} | {share:.0%} |")
            print(f"| {label} | {name} | {tau:.3f} | {truth.std() / truth.mean():.4f} | "
                  f"{rel.mean():+.4f} | {rel.std():.4f} {extra}")


def _expected_labels(log: eq.Log) -> eq.Log:
    """The log with each shown label replaced by its expectation in the slot it had."""
    traffic = log.traffic
    shown = traffic.shown
    exam = np.where(shown, log.world.examination[np.where(shown, traffic.positions, 0)], 0.0)
    expected = log.world.expected_rewards(traffic)
    labels = {t: exam * expected[..., i] for i, t in enumerate(log.world.tasks)}
    return dataclasses.replace(log, traffic=dataclasses.replace(traffic, labels=labels))


if __name__ == "__main__":
    main()
