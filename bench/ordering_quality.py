"""Which estimate orders weight vectors best on small logs: replay estimators against AUC proxies.

Claim: ``gated_dr`` (DR on a reward model calibrated on the log, cross-fitted, each
vector's correction kept only where the population's corrections stand out of their
noise, :class:`~simulator.estimators.GatedDR`) orders 100 weight vectors by their true
objective at least as well as the fused-score AUC proxies (global AUC and GAUC of the
fused score on the logged labels, combined with the objective's weights,
:mod:`simulator.proxies`), its top pick has no more true regret than theirs, and its
95% intervals cover the true value. Baselines, in the same run on the same logs and
vectors: SNIPS (the default), DR on the raw ranker scores, the AUC and GAUC proxies,
``pooled_dr`` (the same with plain James-Stein shrinkage) and two corners of the family
(``cdr``: no shrinkage, DR on the calibrated model, the unbiased metric; ``cdm``: full
shrinkage, the calibrated direct method moved by the population's mean correction).

Per world and log size: ``--logs`` logs (world seeds ``--seed0 + i``, not the seeds
the estimator's settings were chosen on, which were 1000-1001; ``gated_dr``'s gate of
2 was chosen on seeds 5000-5005 of the KuaiRand world, so those logs are not held out
for it), each with its own 100 weight vectors drawn uniformly from the search box
(click pinned at 1, the others in [0, 4], as ``bench/estimator_quality.py``'s tau
vectors); the logs, scores and truth are ``bench/estimator_quality.py``'s (scores: the
true probabilities times log-normal noise, std 0.3; truth: the exact value on the
log's own requests). Every estimator evaluates the 100 vectors as one population, as
:class:`Replay` does (``prepare``, ``terms`` per chunk of requests, ``finish``), with
the ranking done once per chunk for all of them and the truth; the pooled ones pool
``cdr``'s joined terms.

Printed per (world, requests, method), mean and standard deviation over logs:

* Kendall tau against the truth, for the objective and for each task (a proxy's
  per-task AUC against the task's value, its combined AUC against the objective);
* regret of the top pick: ``100 * (best - true[pick]) / (best - median)`` with
  ``best`` and ``median`` the largest and median true objective among the log's 100
  vectors (0: picked the best; 100: no better than a median vector);
* for the estimators, the share of the 100 vectors whose 95% percentile bootstrap
  interval (200 resamples) covers the true objective, and each task's, with twice its
  standard error over logs (a log's vectors share its noise: the log is the unit).
  ``pooled_dr`` and ``gated_dr`` resample their own pooled per-request terms
  (``spread="pooled"``); ``pooled_dr/dr`` and ``gated_dr/dr`` the same points with DR's
  spread around them (``spread="dr"``, ``pooled_dr``'s former intervals);
* the shrinkage ``lambda`` of each task (mean, and the share of logs where it is 0);
* the cost per vector of the AUC proxy (both AUCs, its setup included), of the shared
  ranking, of each estimator's terms or pooling, and the calibration once per log in
  seconds, on the first log of each size.

Run: ``python bench/ordering_quality.py [--worlds kuairand marketplace] [--sizes 5000
20000 80000] [--logs 8] [--logs-large 8] [--vectors 100] [--seed0 5000] [--progress]``
(``--logs-large`` logs at sizes above 40,000; ``--vectors`` weight vectors per log:
fewer make coverage over many logs affordable, since a log's vectors share its noise
and the log is the unit; ``--progress`` prints the tables after every log; the
KuaiRand world needs ``../shared/data/kuairand-pure``).
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
    GatedDR,
    PooledDR,
    RequestTerms,
    SlateFeedback,
)
from simulator.estimators._base import expose  # noqa: E402
from simulator.fusion import MultiplicativeFusion  # noqa: E402
from simulator.intervals import BootstrapInterval, point_values  # noqa: E402
from simulator.policies import TopKPolicy  # noqa: E402
from simulator.proxies import AUCProxy  # noqa: E402
from simulator.replay import objective_matrix  # noqa: E402

RAW: dict[str, BaseEstimator] = {"snips": SNIPS(), "dr": DoublyRobust()}  # on the raw scores
CALIBRATED = PooledDR(shrinkage=1.0)  # cdr: DR on the calibrated model, whose terms serve:
POOLED: dict[str, PooledDR] = {
    "cdm": PooledDR(shrinkage=0.0),
    "pooled_dr": PooledDR(),
    "pooled_dr/dr": PooledDR(spread="dr"),  # the former intervals: DR's width
    "gated_dr": GatedDR(),
    "gated_dr/dr": GatedDR(spread="dr"),
}
PROXIES = ("auc", "gauc")
# estimators whose intervals count
COVERED = ("snips", "dr", "cdr", "pooled_dr", "pooled_dr/dr", "gated_dr", "gated_dr/dr")
CHUNK = 5000  # requests per pass, as Replay's default


def regret(value: np.ndarray, truth: np.ndarray) -> float:
    """``100 (best - truth[argmax value]) / (best - median)`` of the true objective."""
    best, median = truth.max(), np.median(truth)
    return float(100.0 * (best - truth[int(np.argmax(value))]) / (best - median))


def population_terms(log: eq.Log, weights: np.ndarray, feedback: SlateFeedback
                     ) -> tuple[dict[str, RequestTerms], np.ndarray, dict[str, float]]:
    """Every replay estimator's terms of ``weights [P, T]``, their true values ``[P, T]``
    and the cost of each part, from one top-K ranking per request chunk.

    What :class:`Replay` computes estimator by estimator (``prepare``, ``terms`` per
    chunk, ``finish``), with the fusion and the top-K done once for all of them and
    for the truth; the pooled variants pool ``cdr``'s joined terms.
    """
    tick = time.perf_counter()
    prepared = CALIBRATED.prepare(feedback)  # the cross-fitted calibration, once a log
    times = {"calibration (once a log, s)": time.perf_counter() - tick}
    fusion, policy = MultiplicativeFusion(), TopKPolicy(log.traffic.slate_size)
    transformed = fusion.transform(log.scores)
    rewards = log.world.expected_rewards(log.traffic)  # [R, N, T]
    truth = np.zeros((len(weights), rewards.shape[2]))
    parts: dict[str, list[RequestTerms]] = defaultdict(list)
    spent: dict[str, float] = defaultdict(float)
    for start in range(0, feedback.n_requests, CHUNK):
        stop = min(start + CHUNK, feedback.n_requests)
        tick = time.perf_counter()
        exposure = policy.exposure(fusion.fuse(transformed[start:stop], weights),
                                   feedback.examination)  # [P, c, N]
        spent["ranking"] += time.perf_counter() - tick
        truth += expose(exposure.astype(np.float64), rewards[start:stop]).sum(axis=1)
        for name, est, fb in (*((n, e, feedback) for n, e in RAW.items()),
                              ("cdr", CALIBRATED, prepared)):
            tick = time.perf_counter()
            parts[name].append(est.terms(fb.chunk(start, stop), exposure))
            spent[name] += time.perf_counter() - tick
    terms = {name: RequestTerms.concatenate(p) for name, p in parts.items()}
    for name, est in POOLED.items():
        tick = time.perf_counter()
        terms[name] = est.finish(terms["cdr"])
        spent[name] += time.perf_counter() - tick
    times.update({k: v / len(weights) for k, v in spent.items()})
    return terms, truth / feedback.n_requests, times


def run_log(world: str, seed: int, requests: int, fit: object, timing: bool,
            vectors: int = 100) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Tau per metric, regret and coverage of every method on one log; timings."""
    log = eq.make_log(world, seed, requests, fit)
    weights = eq.weight_sets(log, seed, 0, 0, vectors)["tau"]
    tasks = log.world.tasks
    objective = eq.OBJECTIVES[world]
    combine = objective_matrix(tasks, objective)
    metrics = [*tasks, "objective"]
    feedback = SlateFeedback.from_traffic(log.traffic, tasks, reward_model=eq.reward_model(log))
    all_terms, true_tasks, times = population_terms(log, weights, feedback)
    truth = true_tasks @ combine  # [P, M]
    out: dict[str, dict[str, float]] = {}
    for name, terms in all_terms.items():
        value = point_values(terms, combine)
        row = {f"tau {m}": float(stats.kendalltau(value[:, i], truth[:, i]).statistic)
               for i, m in enumerate(metrics)}
        row["regret"] = regret(value[:, -1], truth[:, -1])
        row["bias %"] = float(100 * (value[:, -1] - truth[:, -1]).mean() / truth[:, -1].mean())
        if name in COVERED:
            low, high = BootstrapInterval(200, seed=seed).bounds(terms, combine)
            hit = (low <= truth) & (truth <= high)
            row.update({f"cover {m}": float(hit[:, i].mean()) for i, m in enumerate(metrics)})
        if name in POOLED and POOLED[name].shrinkage is None and "/" not in name:
            row.update({f"lambda {t}": float(x) for t, x in
                        zip(tasks, POOLED[name].pooling(all_terms["cdr"])[1], strict=True)})
        out[name] = row
    del all_terms
    tick = time.perf_counter()
    proxy = AUCProxy(feedback, log.scores, tasks, MultiplicativeFusion()).evaluate(
        weights, objective)
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
    parser.add_argument("--logs-large", type=int, default=8,
                        help="logs at sizes above 40,000 requests")
    parser.add_argument("--seed0", type=int, default=5000)
    parser.add_argument("--vectors", type=int, default=100,
                        help="weight vectors per log (fewer: cheaper coverage over many logs)")
    parser.add_argument("--progress", action="store_true",
                        help="print the tables so far after every log (long runs)")
    args = parser.parse_args()
    fit = eq.load_response_model() if "kuairand" in args.worlds else None
    if args.vectors < 3:
        parser.error(f"--vectors must be at least 3 (the pooled estimators pool over the "
                     f"population), got {args.vectors}")
    print(f"# Ordering quality: {args.vectors} uniform vectors per log; seeds from "
          f"{args.seed0}")
    for world in args.worlds:
        for size in args.sizes:
            n_logs = args.logs if size <= 40_000 else args.logs_large
            tick = time.perf_counter()
            rows: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
            times: dict[str, float] = {}
            for i in range(n_logs):
                out, t = run_log(world, args.seed0 + i, size, fit, timing=i == 0,
                                 vectors=args.vectors)
                times.update(t)
                for name, row in out.items():
                    for key, x in row.items():
                        rows[name][key].append(x)
                print(f"  ({world} {size:,}: log {i + 1}/{n_logs} done, "
                      f"{time.perf_counter() - tick:.0f} s)", file=sys.stderr, flush=True)
                if args.progress and 1 < i + 1 < n_logs:
                    report(world, size, i + 1, rows, times)
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
        if "/" in name:  # the same point as its namesake; only its interval differs
            continue
        reg = row["regret"]
        bias = (f"{np.mean(row['bias %']):+.2f} ± {np.std(row['bias %'], ddof=1):.2f}"
                if "bias %" in row else "")
        print(f"| {name} | " + " | ".join(cell(row, k) for k in taus)
              + f" | {np.mean(reg):.1f} ± {np.std(reg, ddof=1):.1f} | {bias} |")
    covers = [k for k in keys if k.startswith("cover")]
    print("\n95% percentile-bootstrap coverage of the true value: share of the log's vectors, "
          "mean over logs ± 2 standard errors over logs (a log's vectors share its noise, "
          "so the log is the unit), lowest log in brackets\n")
    print("| estimator | " + " | ".join(covers) + " |")
    print("|---" * (len(covers) + 1) + "|")
    for name in COVERED:
        print(f"| {name} | " + " | ".join(_coverage(rows[name][k]) for k in covers) + " |")
    for name in POOLED:
        lam = [k for k in rows[name] if k.startswith("lambda")]
        if lam:
            print(f"\n{name} shrinkage lambda (mean over logs; share of logs at 0): "
                  + ", ".join(f"{k.split()[1]} {np.mean(rows[name][k]):.2f} "
                              f"({np.mean(np.array(rows[name][k]) == 0):.0%})" for k in lam))
    print("\ncost per vector (first log): " + ", ".join(
        f"{k} {v:.2f}" if "once" in k else f"{k} {1e3 * v:.1f} ms" for k, v in times.items()))



def _coverage(hits: list[float]) -> str:
    """Mean share covered, ± 2 standard errors over logs, and the lowest log's share."""
    h = np.array(hits)
    return f"{h.mean():.3f} ± {2 * h.std(ddof=1) / np.sqrt(len(h)):.3f} ({h.min():.2f})"


if __name__ == "__main__":
    main()
