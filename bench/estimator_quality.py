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
  The tau logs are streamed over request chunks (only ``O(P^2)`` sums are kept, so
  logs of a million requests fit), and beside the measured tau the table prints the
  tau expected of an unbiased normal estimate from the log's delta-method covariance
  (:mod:`simulator.ordering`), against the log's own truth and against new requests,
  and the requests at which the latter reaches 0.9. The target is a matter of log
  size, measured: ``--seeds 0 --tau-seeds 4 --tau-requests N`` gives SNIPS 0.900 at
  40,000 requests on the marketplace and 0.927 at 640,000 on the KuaiRand world
  (README, "Benchmarks").

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

Coverage by effective events: a second table bins the 95% intervals of every task
and of the objective (near and far vectors) by the effective number of label events
behind each estimate, realized (``RequestTerms.events``) and expected
(``RequestTerms.expected_events``, what the CLI warns on); it calibrates
``simulator.replay.MIN_EVENTS``, whose docstring holds the measured table.

Run: ``python bench/estimator_quality.py [--seeds 200] [--requests 10000]`` (the
KuaiRand world needs ``../shared/data/kuairand-pure``; ``--worlds marketplace``
runs without it). 200 seeds take about 9 CPU-minutes per world (25 minutes of
wall time each on a busy shared 2-core machine).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
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
from simulator.estimators._base import expose
from simulator.fusion import MultiplicativeFusion
from simulator.intervals import (
    BootstrapInterval,
    NormalInterval,
    StudentizedBootstrapInterval,
    point_values,
)
from simulator.logs import LoggedTraffic
from simulator.ordering import expected_kendall_tau, requests_for_kendall_tau
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
TAU_TARGET = 0.9
OBJECTIVES = {
    "marketplace": {"click": 1.0, "conversion": 10.0, "like": 5.0},
    "kuairand": {"click": 1.0, "long_view": 1.0, "like": 10.0, "profile_enter": 10.0},
}
# conditional score tasks (sample space "after:click"): reward model = parent x child
CONDITIONAL = {"conversion": "click", "long_view": "click"}
# pooled_dr and gated_dr learn from the whole log and pool over the population (Replay calls
# their prepare and finish; the chunked passes here do not): bench/ordering_quality.py
# measures them
DEFAULT_ESTIMATORS = tuple(name for name in ESTIMATORS
                           if name not in ("iips", "pooled_dr", "gated_dr"))
EVENTS_EDGES = (10.0, 30.0, 100.0, 300.0)  # bins of the coverage-by-events table


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
    """``[P]`` exact objective of ranking by ``weights [P, T]``."""
    return true_values(log, weights) @ np.array([objective.get(t, 0.0) for t in log.world.tasks])


def true_values(log: Log, weights: np.ndarray) -> np.ndarray:
    """``[P, T]`` exact per-task values of ranking by ``weights [P, T]``, in request chunks
    (the exposure of every vector over a whole large log would not fit in memory)."""
    fusion = MultiplicativeFusion()
    policy = TopKPolicy(log.traffic.slate_size)
    rewards = log.world.expected_rewards(log.traffic)  # [R, N, T]
    transformed = fusion.transform(log.scores)
    total = np.zeros((len(weights), rewards.shape[2]))
    for start in range(0, log.traffic.n_requests, CHUNK):
        sl = slice(start, start + CHUNK)
        exposure = policy.exposure(fusion.fuse(transformed[sl], weights), log.world.examination)
        total += expose(exposure.astype(np.float64), rewards[sl]).sum(axis=1)
    return total / log.traffic.n_requests  # [P, T]


@dataclass
class Tally:
    """Per (world, estimator, group) rows of (error, truth, seed, and whether the
    percentile bootstrap, the studentized bootstrap and the normal interval cover)."""

    rows: list[tuple[float, float, int, bool, bool, bool]] = dataclasses.field(
        default_factory=list)
    failure: str = ""


def chunk_terms(log: Log, weights: np.ndarray, names: Sequence[str]
                ) -> Iterator[tuple[slice, np.ndarray, dict[str, RequestTerms | str]]]:
    """Per request chunk: its slice, the top-K exposure ``[P, c, N]`` of ``weights [P, T]``
    and every named estimator's terms (or, once it has failed, why not).

    What :meth:`Replay.terms` computes, with the fusion and the top-K exposure done
    once per chunk for every estimator that needs only exposure (all but the
    slate-native ``rips`` and ``pi``), so a seed costs one ranking, not eleven.
    """
    tasks = log.world.tasks
    feedback = SlateFeedback.from_traffic(log.traffic, tasks, reward_model=reward_model(log))
    fusion, policy = MultiplicativeFusion(), TopKPolicy(log.traffic.slate_size)
    transformed = fusion.transform(log.scores)
    estimators = {name: make_estimator(name) for name in names}
    failed: dict[str, str] = {}
    for start in range(0, feedback.n_requests, CHUNK):
        sl = slice(start, min(start + CHUNK, feedback.n_requests))
        chunk = feedback.chunk(sl.start, sl.stop)
        fused = fusion.fuse(transformed[sl], weights)  # [P, c, N]
        exposure = policy.exposure(fused, chunk.examination)
        out: dict[str, RequestTerms | str] = {}
        for name, est in estimators.items():
            if name not in failed:
                try:
                    if type(est).policy_terms is BaseEstimator.policy_terms:
                        out[name] = est.terms(chunk, exposure)
                    else:  # slate-native: asks the policy for slot or prefix probabilities
                        out[name] = est.policy_terms(chunk, policy, fused)
                except (ValueError, NotImplementedError) as err:  # e.g. pi without its logger
                    failed[name] = str(err)[:60]
            out.setdefault(name, failed.get(name, ""))
        yield sl, exposure, out


def seed_terms(log: Log, weights: np.ndarray, names: Sequence[str] = DEFAULT_ESTIMATORS
               ) -> dict[str, RequestTerms | str]:
    """Every named estimator's per-request terms for ``weights [P, T]`` on one log (or why not)."""
    parts: dict[str, list[RequestTerms]] = {name: [] for name in names}
    failed: dict[str, str] = {}
    for _, _, terms in chunk_terms(log, weights, names):
        for name, t in terms.items():
            if isinstance(t, str):
                failed[name] = t
            else:
                parts[name].append(t)
    return {name: failed.get(name) or RequestTerms.concatenate(parts[name]) for name in names}


@dataclass
class EventsTally:
    """Per (world, estimator) rows of (effective events, expected events, seed, metric,
    whether the percentile bootstrap and the normal interval cover), one per (vector,
    metric)."""

    rows: list[tuple[float, float, int, str, bool, bool]] = dataclasses.field(
        default_factory=list)


def run_seed(log: Log, seed: int, objective: dict[str, float], sets: dict[str, np.ndarray],
             tallies: dict[tuple[str, str], Tally], names: Sequence[str],
             events: dict[str, EventsTally] | None = None) -> None:
    """Errors and interval hits of every estimator for the near and far vectors of a log.

    The objective's go to ``tallies``; with ``events``, every metric's (each task and
    the objective) hits go there with the effective events of its estimate.
    """
    combine = objective_matrix(log.world.tasks, objective)
    metrics = [*log.world.tasks, "objective"]
    weights = np.concatenate([sets["near"], sets["far"]])
    truths = true_values(log, weights) @ combine  # [P, M]
    truth = truths[:, -1]
    n_near = len(sets["near"])
    for name, terms in seed_terms(log, weights, names).items():
        if isinstance(terms, str):
            for g in ("near", "far"):
                tallies[(name, g)].failure = terms
            continue
        value = point_values(terms, combine)[:, -1]
        hits = []  # [P, M] per interval
        for interval in (BootstrapInterval(200, seed=seed),
                         StudentizedBootstrapInterval(200, seed=seed), NormalInterval()):
            low, high = interval.bounds(terms, combine)
            hits.append((low <= truths) & (truths <= high))
        for p in range(len(weights)):
            boot, student, normal = (bool(h[p, -1]) for h in hits)
            tallies[(name, "near" if p < n_near else "far")].rows.append((
                float(value[p] - truth[p]), float(truth[p]), seed, boot, student, normal))
        if events is not None:
            n_events, n_expected = terms.events(combine), terms.expected_events(combine)
            events[name].rows.extend(
                (float(n_events[p, m]), float(n_expected[p, m]), seed, metric,
                 bool(hits[0][p, m]), bool(hits[2][p, m]))
                for p in range(len(weights)) for m, metric in enumerate(metrics))


class StreamedEstimate:
    """One estimator's objective estimate of ``P`` vectors, summed over request chunks.

    Keeps the sums of the per-request objective numerator ``a``, denominator ``d``
    (1 for a plain mean), offset ``o`` and true value ``t``, and their cross moments
    over all vectors: memory ``O(P^2)``, not ``O(P R)``, so a log of a million
    requests fits. The estimate is ``s A / D + O / R`` (``s = 1``, ``D = R`` for a
    plain mean); its delta-method influence per request is
    ``infl = s R (a - (A / D) d) / D + o - O / R``. Two covariances of the ``P``
    estimates follow, each ``sum_r x x^T / R^2``:

    * against the world's value on new requests, ``x = infl``
      (:func:`simulator.ordering.covariance`, what the tuner can compute);
    * against the true value on this log's own requests (the bench's truth),
      ``x = infl - (t - T / R)``: the requests' own spread is no error then.
    """

    def __init__(self, n_vectors: int) -> None:
        self.p = n_vectors
        self.sums = np.zeros(4 * n_vectors + 1)
        self.cross = np.zeros((4 * n_vectors + 1, 4 * n_vectors + 1))
        self.scale_sum = np.zeros(n_vectors)
        self.requests = 0

    def add(self, terms: RequestTerms, column: np.ndarray, truth: np.ndarray) -> None:
        """Add a chunk: its terms, ``column [T]`` combining the tasks into the objective,
        and the true objective ``[P, c]`` of each vector on each request of the chunk."""
        a = np.einsum("prt,t->pr", terms.numerator.astype(np.float64), column)
        c = a.shape[1]
        d = (np.ones_like(a) if terms.denominator is None
             else terms.denominator.astype(np.float64))
        o = (np.zeros_like(a) if terms.offset is None
             else np.einsum("prt,t->pr", terms.offset.astype(np.float64), column))
        z = np.concatenate([a, d, o, truth, np.ones((1, c))])
        self.sums += z.sum(axis=1)
        self.cross += z @ z.T
        scale = np.ones(self.p) if terms.scale is None else np.asarray(terms.scale, float)
        self.scale_sum += scale * c
        self.requests += c

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``[P]`` estimates, ``[P]`` true values on this log, and the ``[P, P]``
        covariances of the estimates against new requests and against this log."""
        p, r = self.p, self.requests
        big_a, big_d, big_o, big_t = (self.sums[i * p:(i + 1) * p] for i in range(4))
        s = self.scale_sum / r
        value = s * big_a / big_d + big_o / r
        coef = np.zeros((p, 4 * p + 1))
        idx = np.arange(p)
        coef[idx, idx] = s * r / big_d
        coef[idx, p + idx] = -s * r * big_a / big_d ** 2
        coef[idx, 2 * p + idx] = 1.0
        coef[:, 4 * p] = -big_o / r
        new = coef @ self.cross @ coef.T / r ** 2
        coef[idx, 3 * p + idx] = -1.0
        coef[:, 4 * p] += big_t / r
        own = coef @ self.cross @ coef.T / r ** 2
        return value, big_t / r, new, own


@dataclass
class TauRow:
    """Per (world, estimator): measured Kendall tau of each tau log, the tau expected
    against the log's own truth and against new requests, and the requests at which
    the latter reaches the target."""

    taus: list[float] = dataclasses.field(default_factory=list)
    expected_own: list[float] = dataclasses.field(default_factory=list)
    expected_new: list[float] = dataclasses.field(default_factory=list)
    needed: list[float] = dataclasses.field(default_factory=list)
    failure: str = ""


def run_tau_log(log: Log, weights: np.ndarray, objective: dict[str, float],
                rows: dict[str, TauRow], names: Sequence[str]) -> None:
    """Kendall tau of every estimator on one log, streamed over request chunks."""
    column = objective_matrix(log.world.tasks, objective)[:, -1]
    rewards = log.world.expected_rewards(log.traffic) @ column  # [R, N]
    streams = {name: StreamedEstimate(len(weights)) for name in names}
    for sl, exposure, terms in chunk_terms(log, weights, names):
        truth = np.einsum("prn,rn->pr", exposure.astype(np.float64), rewards[sl])
        for name, t in terms.items():
            if isinstance(t, str):
                rows[name].failure = t
            else:
                streams[name].add(t, column, truth)
    for name, stream in streams.items():
        if rows[name].failure:
            continue
        value, truth_p, cov_new, cov_own = stream.result()
        rows[name].taus.append(float(stats.kendalltau(value, truth_p).statistic))
        rows[name].expected_own.append(expected_kendall_tau(truth_p, cov_own))
        rows[name].expected_new.append(expected_kendall_tau(truth_p, cov_new))
        rows[name].needed.append(
            requests_for_kendall_tau(truth_p, cov_new, stream.requests, TAU_TARGET))


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
        "| cover normal |")
    say("|---|---|---|---|---|---|---|---|---|---|")
    for (name, group), tally in tallies.items():
        if tally.failure:
            say(f"| {name} | {group} | n/a: {tally.failure} | | | | | | | |")
            continue
        err, truth, seeds, *hits = (np.array(c) for c in zip(*tally.rows, strict=True))
        mean_truth = truth.mean()
        rmse = float(np.sqrt(np.mean(err ** 2)))
        cover = " | ".join(_coverage(h, seeds) for h in hits)
        say(f"| {name} | {group} | {err.mean():+.4f} | {100 * err.mean() / mean_truth:+.2f} | "
            f"{err.std(ddof=1):.4f} | {rmse:.4f} | {100 * rmse / mean_truth:.2f} | {cover} |")


def events_table(world: str, requests: int, tallies: dict[str, EventsTally],
                 say: Callable[[str], None]) -> None:
    """Coverage of every metric's interval binned by the effective events of its estimate.

    Rows are bins ``[a, b)`` of :data:`EVENTS_EDGES`, then the cumulative ``>= a``
    rows: a threshold ``a`` is safe when every row at and above it covers 93-97%.
    Binned twice: by the realized events (``RequestTerms.events``) and by the
    expected events (``RequestTerms.expected_events``).
    """
    say(f"\n### {world}: coverage by effective events, logs of {requests:,} requests\n")
    say("Every task's and the objective's 95% interval over the near and far vectors. "
        "events: Kish ESS of the weighted label contributions (RequestTerms.events); "
        "expected: the same with each label replaced by the log's mean label, ess * m1^2 / m2 "
        "(RequestTerms.expected_events). metrics: each metric's share of the row.\n")
    say("| estimator | binned by | events | estimates | cover boot | cover normal | metrics |")
    say("|---|---|---|---|---|---|---|")
    edges = [0.0, *EVENTS_EDGES, np.inf]
    for name, tally in tallies.items():
        if not tally.rows or all(np.isnan(r[0]) for r in tally.rows):
            continue  # no label sums (the direct method)
        ev, expected, seeds, metric, boot, normal = (
            np.array(c) for c in zip(*tally.rows, strict=True))
        for by, n in (("events", ev.astype(float)), ("expected", expected.astype(float))):
            rows = [(f"[{a:g}, {b:g})", (n >= a) & (n < b))
                    for a, b in zip(edges[:-1], edges[1:], strict=True)]
            rows += [(f">= {a:g}", n >= a) for a in EVENTS_EDGES]
            for label, mask in rows:
                if not mask.any():
                    continue  # an empty bin
                names, counts = np.unique(metric[mask], return_counts=True)
                share = ", ".join(f"{m} {c / mask.sum():.0%}" for m, c in
                                  sorted(zip(names, counts, strict=True), key=lambda x: -x[1]))
                say(f"| {name} | {by} | {label} | {mask.sum()} | "
                    f"{_coverage(boot[mask], seeds[mask])} | "
                    f"{_coverage(normal[mask], seeds[mask])} | {share} |")


def tau_table(world: str, requests: int, rows: dict[str, TauRow],
              say: Callable[[str], None]) -> None:
    say(f"\n### {world}: Kendall tau, logs of {requests:,} requests\n")
    say("Measured: against the true values on each log's own requests. Expected: the "
        "normal approximation of an unbiased estimate from the log's delta-method "
        "covariance, against the log's own truth (checks the approximation) and against "
        f"the world's value on new requests; requests for tau {TAU_TARGET}: where the "
        "latter reaches it (median over logs).\n")
    say("| estimator | Kendall tau (mean, min) | expected, own requests | "
        f"expected, new requests | requests for tau {TAU_TARGET} |")
    say("|---|---|---|---|---|")
    for name, row in rows.items():
        if row.failure or not row.taus:
            say(f"| {name} | n/a: {row.failure} | | | |")
            continue
        say(f"| {name} | {np.mean(row.taus):.3f}, {np.min(row.taus):.3f} | "
            f"{np.mean(row.expected_own):.3f} | {np.mean(row.expected_new):.3f} | "
            f"{np.median(row.needed):,.0f} |")


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
    parser.add_argument("--estimators", nargs="+", default=list(DEFAULT_ESTIMATORS),
                        choices=list(DEFAULT_ESTIMATORS))
    args = parser.parse_args()
    fit = load_response_model() if "kuairand" in args.worlds else None
    print(f"# Estimator quality: {args.seeds} seeds x {args.requests} requests (N=20, K=5); "
          f"{args.near} near + {args.far} far vectors per seed; Kendall tau over "
          f"{args.tau_vectors} far vectors on {args.tau_seeds} logs of {args.tau_requests} "
          "requests")
    for world in args.worlds:
        tick = time.perf_counter()
        if args.seeds:
            tallies = {(name, g): Tally() for name in args.estimators for g in ("near", "far")}
            events = {name: EventsTally() for name in args.estimators}
            for seed in range(args.seeds):
                log = make_log(world, seed, args.requests, fit)
                sets = weight_sets(log, seed, args.near, args.far, args.tau_vectors)
                run_seed(log, seed, OBJECTIVES[world], sets, tallies, args.estimators, events)
            table(world, tallies, print)
            events_table(world, args.requests, events, print)
        rows = {name: TauRow() for name in args.estimators}
        for seed in range(args.seeds, args.seeds + args.tau_seeds):
            log = make_log(world, seed, args.tau_requests, fit)
            sets = weight_sets(log, seed, args.near, args.far, args.tau_vectors)
            run_tau_log(log, sets["tau"], OBJECTIVES[world], rows, args.estimators)
            del log
        if args.tau_seeds:
            tau_table(world, args.tau_requests, rows, print)
        print(f"\n({world}: {time.perf_counter() - tick:.0f} s)")


if __name__ == "__main__":
    main()
