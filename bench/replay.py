"""Replay speed: a 64-vector population over 1,000,000 logged candidates.

Claim: the simulator evaluates a whole CEM generation in one vectorized pass,
faster per vector than a plain numpy loop that fuses, ranks (argsort) and sums
the top-5 labels one weight vector at a time — the baseline named in
DESIGN.md (25-38 ms per vector with numpy argsort on these machines).

Run: ``python bench/replay.py [--requests 50000] [--vectors 64]``. Prints
milliseconds per weight vector of each variant and the ratios to the baseline,
all measured in this run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from simulator.estimators import IPS, SNIPS, SlateFeedback
from simulator.fusion import MultiplicativeFusion
from simulator.intervals import BootstrapInterval, NormalInterval, StudentizedBootstrapInterval
from simulator.logs import LoggedTraffic
from simulator.policies import EpsilonGreedyTopK, TopKPolicy
from simulator.replay import Replay

TASKS = ("click", "conversion", "like", "watch")


def make_log(n_requests: int, n_candidates: int, k: int, seed: int) -> tuple[LoggedTraffic,
                                                                          np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (n_requests, n_candidates)
    scores = rng.uniform(0.01, 0.9, size=(*shape, len(TASKS)))
    logger = EpsilonGreedyTopK(k=k, epsilon=0.2)
    logging_score = np.log(scores).sum(axis=2)
    slates = logger.sample(logging_score, seed=seed)
    positions = np.full(shape, -1, dtype=np.int64)
    np.put_along_axis(positions, slates, np.arange(k)[None, :], axis=1)
    shown = positions >= 0
    labels = {t: ((rng.random(shape) < scores[..., i]) & shown).astype(np.float64)
              for i, t in enumerate(TASKS)}
    traffic = LoggedTraffic(
        request_ids=np.arange(n_requests, dtype=np.int64),
        user_ids=np.arange(n_requests, dtype=np.int64),
        item_ids=np.tile(np.arange(n_candidates, dtype=np.int64), (n_requests, 1)),
        positions=positions,
        pscores=logger.pscores(logging_score),
        labels=labels,
        examination=1.0 / (1.0 + np.arange(k)) ** 0.8,
    )
    return traffic, scores


def numpy_loop(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
    """The baseline: one vector at a time, numpy argsort, sum of top-k labels."""
    logp = np.log(scores)
    out = np.empty((len(weights), labels.shape[2]))
    for p, w in enumerate(weights):
        fused = logp @ w  # [R, N]
        top = np.argsort(-fused, axis=1)[:, :k]  # [R, k]
        out[p] = np.take_along_axis(labels, top[..., None], axis=1).sum(axis=(0, 1))
    return out / labels.shape[0]


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--vectors", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    k = 5
    traffic, scores = make_log(args.requests, args.candidates, k, seed=0)
    weights = np.random.default_rng(1).uniform(0.0, 2.0, size=(args.vectors, len(TASKS)))
    feedback = SlateFeedback.from_traffic(traffic)
    full_labels = traffic.label_matrix(TASKS)

    def replay(estimator, interval):
        return Replay(feedback, scores, TASKS, MultiplicativeFusion(), TopKPolicy(k), estimator,
                      interval)

    n_cand = args.requests * args.candidates
    print(f"{args.vectors} weight vectors x {args.requests:,} requests x {args.candidates} "
          f"candidates ({n_cand:,} candidates), top-{k}; best of {args.repeats}")
    base_vectors = min(8, args.vectors)
    base = timed(lambda: numpy_loop(scores, full_labels, weights[:base_vectors], k),
                 args.repeats) / base_vectors
    rows = [("numpy loop, argsort, 1 vector at a time (baseline)", base)]
    ips_norm = replay(IPS(), NormalInterval())
    rows.append(("replay IPS, population pass, no interval",
                 timed(lambda: ips_norm.terms(weights), args.repeats) / args.vectors))
    rows.append(("replay IPS + normal interval",
                 timed(lambda: ips_norm.evaluate(weights), args.repeats) / args.vectors))
    snips_boot = replay(SNIPS(), BootstrapInterval(200))
    rows.append(("replay SNIPS + bootstrap interval (200 resamples)",
                 timed(lambda: snips_boot.evaluate(weights), args.repeats) / args.vectors))
    snips_t = replay(SNIPS(), StudentizedBootstrapInterval(200))
    rows.append(("replay SNIPS + studentized bootstrap (200 resamples)",
                 timed(lambda: snips_t.evaluate(weights), args.repeats) / args.vectors))
    print(f"{'variant':<55} {'ms/vector':>10} {'speed-up vs baseline':>22}")
    for name, sec in rows:
        print(f"{name:<55} {sec * 1e3:>10.2f} {base / sec:>21.2f}x")
    no_interval = rows[1][1]
    print(f"bootstrap (200) over no interval: {rows[3][1] / no_interval:.2f}x the time")
    print(f"studentized bootstrap (200) over no interval: {rows[4][1] / no_interval:.2f}x "
          "the time")
    print(f"a {args.vectors}-vector generation with bootstrap intervals: "
          f"{rows[3][1] * args.vectors:.2f} s")


if __name__ == "__main__":
    main()
