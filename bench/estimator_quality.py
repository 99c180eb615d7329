"""Estimator quality against exact ground truth, on the marketplace and the KuaiRand world.

Claim: the tuner's default estimator is trustworthy as an offline A/B proxy: its
95% interval covers the true value 93-97% of the time for weight vectors near the
logging policy, and it orders random weight vectors like the truth does (Kendall
tau >= 0.9). Baseline: every other registered estimator, measured the same way.

For each seed, each world logs ``--requests`` requests (N=20 candidates, K=5 slots,
epsilon-greedy logger, epsilon 0.2); the "ranker" scores are the world's true
probabilities times log-normal noise (std 0.3, as in ``tests/worldkit.py``), and
the reward model of dm/dr/... is the same scores made unconditional. Target
policies rank by multiplicative fusion ``sum_k w_k log p_k`` with a deterministic
top-K, click's weight pinned at 1:

* near: the logging weights plus N(0, 0.1) noise on each free weight (>= 0);
* far: free weights uniform in [0, 4];
* tau: 100 far vectors on each of ``--tau-seeds`` larger logs of
  ``--tau-requests`` requests (the size of a tuner's search split), Kendall tau
  between the estimates and the true values of the objective.

The truth is ``world.true_value`` on the same requests (exact, no sampling).
Objectives: marketplace ``click + 10 conversion + 5 like``; KuaiRand ``click +
long_view + 10 like + 10 profile_enter``. Errors are pooled over (seed, vector)
pairs; coverage is of the 95% percentile bootstrap (200 resamples, the tuner's
interval) and of the normal interval.

Run: ``python bench/estimator_quality.py [--seeds 200] [--requests 1000]`` (the
KuaiRand world needs ``../shared/data/kuairand-pure``; ``--worlds marketplace``
runs without it).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

from simulator.estimators import ESTIMATORS, SlateFeedback, make_estimator
from simulator.fusion import MultiplicativeFusion
from simulator.intervals import BootstrapInterval, NormalInterval, point_values
from simulator.logs import LoggedTraffic
from simulator.policies import EpsilonGreedyTopK, TopKPolicy
from simulator.replay import Replay, objective_matrix
from simulator.worlds import (
    BaseWorld,
    KuaiRandConfig,
    KuaiRandWorld,
    MarketplaceConfig,
    MarketplaceWorld,
    load_response_model,
)

SCORE_NOISE = 0.3
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
    """Per (world, estimator, group) rows of (error, truth, boot hit, normal hit)."""

    rows: list[tuple[float, float, bool, bool]] = dataclasses.field(default_factory=list)
    taus: list[float] = dataclasses.field(default_factory=list)
    failure: str = ""


def run_seed(log: Log, seed: int, objective: dict[str, float], sets: dict[str, np.ndarray],
             tallies: dict[tuple[str, str], Tally], with_tau: bool, coverage: bool = True
             ) -> None:
    tasks = log.world.tasks
    feedback = SlateFeedback.from_traffic(log.traffic, tasks, reward_model=reward_model(log))
    combine = objective_matrix(tasks, objective)
    groups = ["near", "far"] + (["tau"] if with_tau else [])
    weights = np.concatenate([sets[g] for g in groups])
    truth = true_objective(log, weights, objective)
    bounds = np.cumsum([0] + [len(sets[g]) for g in groups])
    for name in ESTIMATORS:
        if name == "iips":  # an alias of ips: same numbers
            continue
        replay = Replay(feedback, log.scores, tasks, MultiplicativeFusion(),
                        TopKPolicy(log.traffic.slate_size), make_estimator(name),
                        chunk_requests=500)
        try:
            terms = replay.terms(weights)
        except (ValueError, NotImplementedError) as err:
            for g in ("near", "far"):
                tallies[(name, g)].failure = str(err)[:60]
            continue
        value = point_values(terms, combine)[:, -1]
        if with_tau:
            sl = slice(int(bounds[2]), int(bounds[3]))
            tau = stats.kendalltau(value[sl], truth[sl]).statistic
            tallies[(name, "far")].taus.append(float(tau))
        if not coverage:
            continue
        sub = _near_far_terms(terms, int(bounds[2]))
        blow, bhigh = BootstrapInterval(200, seed=seed).bounds(sub, combine)
        nlow, nhigh = NormalInterval().bounds(sub, combine)
        for gi, g in enumerate(groups[:2]):
            for p in range(int(bounds[gi]), int(bounds[gi + 1])):
                tallies[(name, g)].rows.append((
                    float(value[p] - truth[p]), float(truth[p]),
                    bool(blow[p, -1] <= truth[p] <= bhigh[p, -1]),
                    bool(nlow[p, -1] <= truth[p] <= nhigh[p, -1])))


def _near_far_terms(terms: object, stop: int) -> object:
    """The first ``stop`` policies of a :class:`RequestTerms` (intervals only for those)."""
    def cut(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[:stop]
    return dataclasses.replace(
        terms, numerator=terms.numerator[:stop], denominator=cut(terms.denominator),  # type: ignore
        scale=cut(terms.scale), weight_sum=terms.weight_sum[:stop],  # type: ignore
        weight_sq_sum=terms.weight_sq_sum[:stop], offset=cut(terms.offset))  # type: ignore


def table(world: str, tallies: dict[tuple[str, str], Tally], say: Callable[[str], None]) -> None:
    say(f"\n### {world}: objective {OBJECTIVES[world]}\n")
    say("| estimator | group | bias | bias % | std | RMSE | RMSE % | cover boot | cover normal "
        "| Kendall tau (mean, min) |")
    say("|---|---|---|---|---|---|---|---|---|---|")
    for (name, group), tally in tallies.items():
        if tally.failure:
            say(f"| {name} | {group} | n/a: {tally.failure} | | | | | | | |")
            continue
        err, truth, boot, normal = (np.array(c) for c in zip(*tally.rows, strict=True))
        mean_truth = truth.mean()
        rmse = float(np.sqrt(np.mean(err ** 2)))
        tau = (f"{np.mean(tally.taus):.3f}, {np.min(tally.taus):.3f}"
               if tally.taus else "")
        say(f"| {name} | {group} | {err.mean():+.4f} | {100 * err.mean() / mean_truth:+.2f} | "
            f"{err.std(ddof=1):.4f} | {rmse:.4f} | {100 * rmse / mean_truth:.2f} | "
            f"{boot.mean():.3f} | {normal.mean():.3f} | {tau} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--requests", type=int, default=1000)
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
