"""Which estimate orders weight vectors best on small logs: replay estimators against AUC proxies.

Claim: ``pooled_dr`` (DR on a reward model calibrated on the log, each vector's
correction shrunk towards the population's) orders 100 weight vectors by their true
objective at least as well as the fused-score AUC proxies (global AUC and GAUC of the
fused score on the logged labels, combined with the objective's weights,
:mod:`simulator.proxies`), its top pick has no more true regret than theirs, and its
95% intervals still cover the true value. Baselines, in the same run on the same
logs and vectors: SNIPS (the default), DR on the raw ranker scores, the AUC and GAUC
proxies, and two corners of ``pooled_dr`` (``cdr``: no shrinkage, plain DR on the
calibrated model; ``cdm``: full shrinkage, the calibrated direct method moved by the
population's mean correction).

Per world and log size: ``--logs`` logs (world seeds ``--seed0 + i``, not the seeds
the estimator's settings were chosen on, which were 1000-1001), each with its own 100
weight vectors drawn uniformly from the search box (click pinned at 1, the others in
[0, 4], as ``bench/estimator_quality.py``'s tau vectors); the logs, scores and truth
are ``bench/estimator_quality.py``'s (scores: the true probabilities times
log-normal noise, std 0.3; truth: the exact value on the log's own requests). Each
estimator evaluates the 100 vectors as one population through :class:`Replay`
(its ``prepare`` / ``finish`` hooks included).

Printed per (world, requests, method), mean and standard deviation over logs:

* Kendall tau against the truth, for the objective and for each task (a proxy's
  per-task AUC against the task's value, its combined AUC against the objective);
* regret of the top pick: ``100 * (best - true[pick]) / (best - median)`` with
  ``best`` and ``median`` the largest and median true objective among the log's 100
  vectors (0: picked the best; 100: no better than a median vector);
* for the estimators, the share of the 100 vectors whose 95% percentile bootstrap
  interval (200 resamples) covers the true objective, and each task's;
* the cost per vector of the AUC proxy (both AUCs, its setup included) and of each
  replay pass (``cdm``/``pooled_dr``: only their pooling on ``cdr``'s terms), and each
  replay's setup once per log in seconds (``cdr``'s holds the calibration), on the
  first log of each size.

Run: ``python bench/ordering_quality.py [--worlds kuairand marketplace] [--sizes 5000
20000 80000] [--logs 8] [--logs-large 4]`` (``--logs-large`` logs at sizes above
40,000; the KuaiRand world needs ``../shared/data/kuairand-pure``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
import estimator_quality as eq  # noqa: E402

from simulator.estimators import (  # noqa: E402
    SNIPS,
    BaseEstimator,
    DoublyRobust,
    PooledDR,
    SlateFeedback,
)
from simulator.fusion import MultiplicativeFusion  # noqa: E402
from simulator.intervals import BootstrapInterval, point_values  # noqa: E402
from simulator.policies import TopKPolicy  # noqa: E402
from simulator.proxies import AUCProxy  # noqa: E402
from simulator.replay import Replay, objective_matrix  # noqa: E402

ESTIMATORS: dict[str, BaseEstimator] = {
    "snips": SNIPS(),
    "dr": DoublyRobust(),
    "cdr": PooledDR(shrinkage=1.0),  # first of the family: its terms serve the others
    "cdm": PooledDR(shrinkage=0.0),
    "pooled_dr": PooledDR(),
}
PROXIES = ("auc", "gauc")
COVERED = ("snips", "dr", "pooled_dr")  # estimators whose intervals are computed


def regret(value: np.ndarray, truth: np.ndarray) -> float:
    """``100 (best - truth[argmax value]) / (best - median)`` of the true objective."""
    best, median = truth.max(), np.median(truth)
    return float(100.0 * (best - truth[int(np.argmax(value))]) / (best - median))


def run_log(world: str, seed: int, requests: int, fit: object, timing: bool
            ) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Tau per metric, regret and coverage of every method on one log; timings."""
    log = eq.make_log(world, seed, requests, fit)
    weights = eq.weight_sets(log, seed, 0, 0, 100)["tau"]
    tasks = log.world.tasks
    objective = eq.OBJECTIVES[world]
    combine = objective_matrix(tasks, objective)
    metrics = [*tasks, "objective"]
    truth = eq.true_values(log, weights) @ combine  # [P, M]
    feedback = SlateFeedback.from_traffic(log.traffic, tasks, reward_model=eq.reward_model(log))
    fusion, policy = MultiplicativeFusion(), TopKPolicy(log.traffic.slate_size)
    out: dict[str, dict[str, float]] = {}
    times: dict[str, float] = {}
    base = None  # pooled_dr's terms before pooling: DR on the calibrated model (cdr)
    for name, est in ESTIMATORS.items():
        tick = time.perf_counter()
        if isinstance(est, PooledDR) and base is not None:
            terms = est.finish(base)  # the same prepare and terms, another pooling
        else:
            replay = Replay(feedback, log.scores, tasks, fusion, policy, est)
            times[f"{name} setup (once a log, s)"] = time.perf_counter() - tick
            tick = time.perf_counter()
            terms = replay.terms(weights)
            if isinstance(est, PooledDR):
                base = terms
        times[name] = (time.perf_counter() - tick) / len(weights)
        value = point_values(terms, combine)
        row = {f"tau {m}": float(stats.kendalltau(value[:, i], truth[:, i]).statistic)
               for i, m in enumerate(metrics)}
        row["regret"] = regret(value[:, -1], truth[:, -1])
        row["bias %"] = float(100 * (value[:, -1] - truth[:, -1]).mean() / truth[:, -1].mean())
        if name in COVERED:
            low, high = BootstrapInterval(200, seed=seed).bounds(terms, combine)
            hit = (low <= truth) & (truth <= high)
            row.update({f"cover {m}": float(hit[:, i].mean()) for i, m in enumerate(metrics)})
        if isinstance(est, PooledDR) and est.shrinkage is None and base is not None:
            row.update({f"lambda {t}": float(x)
                        for t, x in zip(tasks, est.pooling(base)[1], strict=True)})
        out[name] = row
    del base
    tick = time.perf_counter()
    proxy = AUCProxy(feedback, log.scores, tasks, fusion).evaluate(weights, objective)
    times["auc+gauc"] = (time.perf_counter() - tick) / len(weights)
    for name, per_task, combined in (("auc", proxy.auc, proxy.auc_combined),
                                     ("gauc", proxy.gauc, proxy.gauc_combined)):
        row = {f"tau {t}": float(stats.kendalltau(per_task[:, i], truth[:, i]).statistic)
               for i, t in enumerate(tasks)}
        row["tau objective"] = float(stats.kendalltau(combined, truth[:, -1]).statistic)
        row["regret"] = regret(combined, truth[:, -1])
        out[name] = row
    return out, (times if timing else {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worlds", nargs="+", default=["kuairand", "marketplace"],
                        choices=["marketplace", "kuairand"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[5000, 20000, 80000])
    parser.add_argument("--logs", type=int, default=8)
    parser.add_argument("--logs-large", type=int, default=4,
                        help="logs at sizes above 40,000 requests")
    parser.add_argument("--seed0", type=int, default=5000)
    args = parser.parse_args()
    fit = eq.load_response_model() if "kuairand" in args.worlds else None
    print(f"# Ordering quality: 100 uniform vectors per log; seeds from {args.seed0}")
    for world in args.worlds:
        for size in args.sizes:
            n_logs = args.logs if size <= 40_000 else args.logs_large
            tick = time.perf_counter()
            rows: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
            times: dict[str, float] = {}
            for i in range(n_logs):
                out, t = run_log(world, args.seed0 + i, size, fit, timing=i == 0)
                times.update(t)
                for name, row in out.items():
                    for key, x in row.items():
                        rows[name][key].append(x)
                print(f"  ({world} {size:,}: log {i + 1}/{n_logs} done, "
                      f"{time.perf_counter() - tick:.0f} s)", file=sys.stderr, flush=True)
            report(world, size, n_logs, rows, times)


def report(world: str, size: int, n_logs: int, rows: dict[str, dict[str, list[float]]],
           times: dict[str, float]) -> None:
    keys = list(rows["pooled_dr"])
    taus = [k for k in keys if k.startswith("tau")]
    print(f"\n### {world}, {size:,} requests, {n_logs} logs "
          f"(objective {eq.OBJECTIVES[world]}): mean ± sd over logs\n")
    print("| method | " + " | ".join(taus) + " | regret % | bias % |")
    print("|---" * (len(taus) + 3) + "|")
    def cell(row: dict[str, list[float]], k: str) -> str:
        v = row.get(k)
        return f"{np.mean(v):.3f} ± {np.std(v, ddof=1):.3f}" if v else ""

    for name, row in rows.items():
        reg = row["regret"]
        bias = (f"{np.mean(row['bias %']):+.2f} ± {np.std(row['bias %'], ddof=1):.2f}"
                if "bias %" in row else "")
        print(f"| {name} | " + " | ".join(cell(row, k) for k in taus)
              + f" | {np.mean(reg):.1f} ± {np.std(reg, ddof=1):.1f} | {bias} |")
    covers = [k for k in keys if k.startswith("cover")]
    print("\n95% percentile-bootstrap coverage of the true value (share of the 100 vectors, "
          "mean over logs; min over logs)\n")
    print("| estimator | " + " | ".join(covers) + " |")
    print("|---" * (len(covers) + 1) + "|")
    for name in COVERED:
        print(f"| {name} | " + " | ".join(
            f"{np.mean(rows[name][k]):.3f} ({np.min(rows[name][k]):.2f})" for k in covers)
            + " |")
    lam = [k for k in keys if k.startswith("lambda")]
    print("\npooled_dr shrinkage lambda (mean over logs): " + ", ".join(
        f"{k.split()[1]} {np.mean(rows['pooled_dr'][k]):.2f}" for k in lam))
    print("\ncost per vector (first log): " + ", ".join(
        f"{k} {v:.2f}" if "setup" in k else f"{k} {1e3 * v:.1f} ms" for k, v in times.items()))


if __name__ == "__main__":
    main()
