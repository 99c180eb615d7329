"""Estimator quality against exact ground truth, on the marketplace and the KuaiRand world.

Claim: the tuner's default estimator is trustworthy as an offline A/B proxy: its
95% interval covers the true value 93-97% of the time for weight vectors near the
logging policy, and it orders random weight vectors like the truth does (Kendall
tau >= 0.9). Baseline: every other registered estimator, measured the same way.

For each seed, each world logs ``--requests`` requests (N=20 candidates, K=5 slots,
epsilon-greedy logger, epsilon 0.2); the "ranker" scores are the world's true
probabilities times log-normal noise (std 0.3, as in ``tests/worldkit.py``), and
the reward model of dm/dr/... is the same scores made unconditional (a stand-in
for a ranker trained on the logs; never refitted on the truth). Target
policies rank by multiplicative fusion ``sum_k w_k log p_k`` with a deterministic
top-K, click's weight pinned at 1:

* near: the logging weights plus N(0, 0.1) noise on each free weight (>= 0);
* far: free weights uniform in [0, 4], the tuner's default search box
  (``FusionSpace``): what a random or TPE start-up trial proposes;
* tau: 100 far vectors on each of ``--tau-seeds`` logs of ``--tau-requests``
  requests, Kendall tau between the estimates and the true values of the objective.

Sample size: 10,000 requests per log by default, the size of one split the tuner
estimates on (``fusiontune demo`` logs 40,000 requests and searches on 25% of them,
holding out another 25%). At 1,000 requests (``--requests 1000``) the rare,
heavily weighted tasks break every interval built from the log alone: on the
KuaiRand world a like or profile-enter with importance weight > 5 is expected
~1.5 times per log, about one log in five holds none, its estimate is low and
its standard error small, and coverage of those tasks falls to ~80%.

The truth is ``world.true_value`` on the same requests (exact, no sampling).
Objectives: marketplace ``click + 10 conversion + 5 like``; KuaiRand ``click +
long_view + 10 like + 10 profile_enter``. Errors are pooled over (seed, vector)
pairs; coverage is of the 95% percentile bootstrap (200 resamples), the
studentized bootstrap (the same resamples) and the normal interval, each with
twice its Monte Carlo standard error, clustered by seed (the vectors of a seed
share a log).

Run: ``python bench/estimator_quality.py [--seeds 200] [--requests 10000]`` (the
KuaiRand world needs ``../shared/data/kuairand-pure``; ``--worlds marketplace``
runs without it). 200 seeds take about 9 CPU-minutes per world (25 minutes of
wall time each on a busy shared 2-core machine).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

from simulator.estimators import (
    ESTIMATORS,
    BaseEstimator,
    RequestTerms,
    SlateFeedback,
    make_estimator,
)
from simulator.fusion import MultiplicativeFusion
from simulator.intervals import (
    BootstrapInterval,
    NormalInterval,
    StudentizedBootstrapInterval,
    point_values,
)
from simulator.logs import LoggedTraffic
from simulator.policies import EpsilonGreedyTopK, TopKPolicy
from simulator.replay import objective_matrix
from simulator.worlds import (
    BaseWorld,
    KuaiRandConfig,
    KuaiRandWorld,
    MarketplaceConfig,
    MarketplaceWorld,
    load_response_model,
)

SCORE_NOISE = 0.3
CHUNK = 2000  # requests per pass: exposure of 110 vectors is ~18 MB
NEAR_NOISE = 0.1
OBJECTIVES = {
    "marketplace": {"click": 1.0, "conversion": 10.0, "like": 5.0},
    "kuairand": {"click": 1.0, "long_view": 1.0, "like": 10.0, "profile_enter": 10.0},
}
# conditional score tasks (sample space "after:click"): reward model = parent x child
CONDITIONAL = {"conversion": "click", "long_view": "click"}


@dataclass(frozen=True)
class Log:
    world: BaseWorld
    traffic: LoggedTraffic
    scores: np.ndarray  # [R, N, T] noisy true probabilities (conditional where the world is)
    logging_weights: np.ndarray  # [T]


def _world(name: str, seed: int, requests: int, fit: object) -> tuple[BaseWorld, np.ndarray]:
    if name == "marketplace":
        mw = MarketplaceWorld(MarketplaceConfig(n_requests=requests, seed=seed))
        return mw, np.asarray(mw.config.logging_weights)
    kw = KuaiRandWorld(KuaiRandConfig(n_requests=requests, seed=seed), fit=fit)  # type: ignore
    return kw, np.asarray(kw.config.logging_weights)


def _with_prefix_pscores(traffic: LoggedTraffic, epsilon: float) -> LoggedTraffic:
    """Add the exact ``prefix_pscore`` of an epsilon-greedy log that lacks it.

    The greedy slate is read back from the marginals (its slot-k candidate has the
    largest ``pscore_k``); ranking by ``K - slot`` reproduces it.
    """
    if traffic.prefix_pscores is not None:
        return traffic
    r, n, k = traffic.pscores.shape
    greedy = traffic.pscores.argmax(axis=1)  # [R, K]
    fused = np.full((r, n), -1.0)
    np.put_along_axis(fused, greedy, (k - np.arange(k, dtype=float))[None], axis=1)
    prefix = EpsilonGreedyTopK(k, epsilon).prefix_probabilities(fused, traffic.positions)
    return dataclasses.replace(traffic, prefix_pscores=prefix)


def make_log(name: str, seed: int, requests: int, fit: object) -> Log:
    world, w0 = _world(name, seed, requests, fit)
    traffic = _with_prefix_pscores(world.generate(), 0.2)
    truth = world.true_probabilities(traffic)  # type: ignore[attr-defined]
    z = np.random.default_rng([seed, 7]).standard_normal(truth.shape)
    return Log(world, traffic, np.clip(truth * np.exp(SCORE_NOISE * z), 1e-6, 1.0), w0)


def reward_model(log: Log) -> np.ndarray:
    tasks = log.world.tasks
    out = log.scores.copy()
    for i, t in enumerate(tasks):
        if t in CONDITIONAL:
            out[..., i] *= log.scores[..., tasks.index(CONDITIONAL[t])]
    return out


def weight_sets(log: Log, seed: int, n_near: int, n_far: int, n_tau: int
                ) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([seed, 11])
    t = len(log.logging_weights)
    near = log.logging_weights[None] + NEAR_NOISE * rng.standard_normal((n_near, t))
    far = rng.uniform(0.0, 4.0, (n_far + n_tau, t))
    out = {"near": np.maximum(near, 0.0), "far": far[:n_far], "tau": far[n_far:]}
    for w in out.values():
        w[:, 0] = 1.0  # click pinned
    return out


def true_objective(log: Log, weights: np.ndarray, objective: dict[str, float]) -> np.ndarray:
    fusion = MultiplicativeFusion()
    fused = fusion.fuse(fusion.transform(log.scores), weights)
    exposure = TopKPolicy(log.traffic.slate_size).exposure(fused, log.world.examination)
    per_task = log.world.true_value(log.traffic, exposure)  # [P, T]
    return per_task @ np.array([objective.get(t, 0.0) for t in log.world.tasks])


@dataclass
class Tally:
    """Per (world, estimator, group) rows of (error, truth, seed, and whether the
    percentile bootstrap, the studentized bootstrap and the normal interval cover)."""

    rows: list[tuple[float, float, int, bool, bool, bool]] = dataclasses.field(
        default_factory=list)
    taus: list[float] = dataclasses.field(default_factory=list)
    failure: str = ""


def seed_terms(log: Log, weights: np.ndarray) -> dict[str, RequestTerms | str]:
    """Every estimator's per-request terms for ``weights [P, T]`` on one log (or why not).

    What :meth:`Replay.terms` computes, with the fusion and the top-K exposure done
    once per chunk for every estimator that needs only exposure (all but the
    slate-native ``rips`` and ``pi``), so a seed costs one ranking, not eleven.
    """
    tasks = log.world.tasks
    feedback = SlateFeedback.from_traffic(log.traffic, tasks, reward_model=reward_model(log))
    fusion, policy = MultiplicativeFusion(), TopKPolicy(log.traffic.slate_size)
    transformed = fusion.transform(log.scores)
    estimators = {name: make_estimator(name) for name in ESTIMATORS if name != "iips"}
    parts: dict[str, list[RequestTerms]] = {name: [] for name in estimators}
    failed: dict[str, str] = {}
    for start in range(0, feedback.n_requests, CHUNK):
        chunk = feedback.chunk(start, min(start + CHUNK, feedback.n_requests))
        fused = fusion.fuse(transformed[start:start + CHUNK], weights)  # [P, c, N]
        exposure = policy.exposure(fused, chunk.examination)
        for name, est in estimators.items():
            if name in failed:
                continue
            try:
                if type(est).policy_terms is BaseEstimator.policy_terms:
                    parts[name].append(est.terms(chunk, exposure))
                else:  # slate-native: asks the policy for slot or prefix probabilities
                    parts[name].append(est.policy_terms(chunk, policy, fused))
            except (ValueError, NotImplementedError) as err:  # e.g. pi without its logger
                failed[name] = str(err)[:60]
    return {name: failed.get(name) or RequestTerms.concatenate(parts[name])
            for name in estimators}


def run_seed(log: Log, seed: int, objective: dict[str, float], sets: dict[str, np.ndarray],
             tallies: dict[tuple[str, str], Tally], with_tau: bool, coverage: bool = True
             ) -> None:
    combine = objective_matrix(log.world.tasks, objective)
    groups = ["near", "far"] + (["tau"] if with_tau else [])
    weights = np.concatenate([sets[g] for g in groups])
    truth = true_objective(log, weights, objective)
    bounds = np.cumsum([0] + [len(sets[g]) for g in groups])
    for name, terms in seed_terms(log, weights).items():
        if isinstance(terms, str):
            for g in ("near", "far"):
                tallies[(name, g)].failure = terms
            continue
        value = point_values(terms, combine)[:, -1]
        if with_tau:
            sl = slice(int(bounds[2]), int(bounds[3]))
            tau = stats.kendalltau(value[sl], truth[sl]).statistic
            tallies[(name, "far")].taus.append(float(tau))
        if not coverage:
            continue
        sub = terms.take(np.arange(int(bounds[2])))  # intervals only for near and far
        hits = []
        for interval in (BootstrapInterval(200, seed=seed),
                         StudentizedBootstrapInterval(200, seed=seed), NormalInterval()):
            low, high = interval.bounds(sub, combine)
            hits.append((low[:, -1] <= truth[:len(low)]) & (truth[:len(low)] <= high[:, -1]))
        for gi, g in enumerate(groups[:2]):
            for p in range(int(bounds[gi]), int(bounds[gi + 1])):
                tallies[(name, g)].rows.append((
                    float(value[p] - truth[p]), float(truth[p]), seed,
                    *(bool(h[p]) for h in hits)))


def _coverage(hit: np.ndarray, seeds: np.ndarray) -> str:
    """Coverage and twice its Monte Carlo standard error, clustered by seed.

    The vectors of one seed share a log, so their hits are correlated; the
    standard error treats each seed's share of hits as one observation.
    """
    per_seed = np.array([hit[seeds == s].mean() for s in np.unique(seeds)])
    se = per_seed.std(ddof=1) / np.sqrt(len(per_seed)) if len(per_seed) > 1 else float("nan")
    return f"{hit.mean():.3f} ± {2 * se:.3f}"


def table(world: str, tallies: dict[tuple[str, str], Tally], say: Callable[[str], None]) -> None:
    say(f"\n### {world}: objective {OBJECTIVES[world]}\n")
    say("| estimator | group | bias | bias % | std | RMSE | RMSE % | cover boot | cover boot-t "
        "| cover normal | Kendall tau (mean, min) |")
    say("|---|---|---|---|---|---|---|---|---|---|---|")
    for (name, group), tally in tallies.items():
        if tally.failure:
            say(f"| {name} | {group} | n/a: {tally.failure} | | | | | | | | |")
            continue
        tau = (f"{np.mean(tally.taus):.3f}, {np.min(tally.taus):.3f}"
               if tally.taus else "")
        if not tally.rows:  # --seeds 0: the Kendall tau logs only
            if tally.taus:
                say(f"| {name} | {group} | | | | | | | | | {tau} |")
            continue
        err, truth, seeds, *hits = (np.array(c) for c in zip(*tally.rows, strict=True))
        mean_truth = truth.mean()
        rmse = float(np.sqrt(np.mean(err ** 2)))
        cover = " | ".join(_coverage(h, seeds) for h in hits)
        say(f"| {name} | {group} | {err.mean():+.4f} | {100 * err.mean() / mean_truth:+.2f} | "
            f"{err.std(ddof=1):.4f} | {rmse:.4f} | {100 * rmse / mean_truth:.2f} | "
            f"{cover} | {tau} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=200,
                        help="coverage logs; 0 runs only the Kendall tau logs")
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--near", type=int, default=5)
    parser.add_argument("--far", type=int, default=5)
    parser.add_argument("--tau-vectors", type=int, default=100)
    parser.add_argument("--tau-seeds", type=int, default=2)
    parser.add_argument("--tau-requests", type=int, default=10_000)
    parser.add_argument("--worlds", nargs="+", default=["marketplace", "kuairand"],
                        choices=["marketplace", "kuairand"])
    args = parser.parse_args()
    fit = load_response_model() if "kuairand" in args.worlds else None
    print(f"# Estimator quality: {args.seeds} seeds x {args.requests} requests (N=20, K=5); "
          f"{args.near} near + {args.far} far vectors per seed; Kendall tau over "
          f"{args.tau_vectors} far vectors on {args.tau_seeds} logs of {args.tau_requests} "
          "requests")
    for world in args.worlds:
        tick = time.perf_counter()
        tallies = {(name, g): Tally() for name in ESTIMATORS if name != "iips"
                   for g in ("near", "far")}
        for seed in range(args.seeds):
            log = make_log(world, seed, args.requests, fit)
            sets = weight_sets(log, seed, args.near, args.far, args.tau_vectors)
            run_seed(log, seed, OBJECTIVES[world], sets, tallies, False)
        for seed in range(args.seeds, args.seeds + args.tau_seeds):
            log = make_log(world, seed, args.tau_requests, fit)
            sets = weight_sets(log, seed, args.near, args.far, args.tau_vectors)
            run_seed(log, seed, OBJECTIVES[world], sets, tallies, True, coverage=False)
        table(world, tallies, print)
        print(f"\n({world}: {time.perf_counter() - tick:.0f} s)")


if __name__ == "__main__":
    main()
