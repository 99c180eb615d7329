"""Ragged logs: the memory of the padded layout and the replay's speed on it.

Claim: a log of requests with 10 to 40 candidates (mean 25) is held padded to 40 with
a candidate mask; it costs 40 / 25 = 1.6x the cells of its rows, and a replay pass over
it costs about what a dense log of 40 candidates does (the padding is ranked too, at
-inf), not more. Baselines, measured in this run: a dense log of 25 candidates (the
same number of real candidates) and one of 40 (the padded width).

Run: ``python bench/ragged_replay.py [--requests 50000] [--vectors 64]``. The dense
replay's speed before and after ragged support is ``bench/replay.py`` run on both
commits (the README's Benchmarks section gives the figures).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.replay import timed  # noqa: E402
from simulator.estimators import IPS, SlateFeedback  # noqa: E402
from simulator.fusion import MultiplicativeFusion  # noqa: E402
from simulator.intervals import NormalInterval  # noqa: E402
from simulator.logs import LoggedTraffic  # noqa: E402
from simulator.policies import EpsilonGreedyTopK, TopKPolicy  # noqa: E402
from simulator.replay import Replay  # noqa: E402

TASKS = ("click", "conversion", "like", "watch")
K = 5


def make_log(n_requests: int, low: int, high: int, seed: int) -> tuple[LoggedTraffic,
                                                                    np.ndarray]:
    """Requests of ``low..high`` candidates (padded to ``high``), an epsilon-greedy logger."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(low, high + 1, n_requests)
    valid = np.arange(high)[None, :] < counts[:, None]
    shape = (n_requests, high)
    scores = np.where(valid[..., None], rng.uniform(0.01, 0.9, (*shape, len(TASKS))), 0.0)
    logger = EpsilonGreedyTopK(k=K, epsilon=0.2)
    logging_score = np.where(valid, np.log(np.maximum(scores, 1e-9)).sum(axis=2), -np.inf)
    slates = logger.sample(logging_score, seed=seed)
    positions = np.full(shape, -1, dtype=np.int64)
    rr, jj = np.nonzero(slates >= 0)
    positions[rr, slates[rr, jj]] = jj
    shown = positions >= 0
    labels = {t: ((rng.random(shape) < scores[..., i]) & shown).astype(np.float64)
              for i, t in enumerate(TASKS)}
    traffic = LoggedTraffic(
        request_ids=np.arange(n_requests, dtype=np.int64),
        user_ids=np.arange(n_requests, dtype=np.int64),
        item_ids=np.where(valid, np.arange(high)[None, :], -1),
        positions=positions, pscores=logger.pscores(logging_score), labels=labels,
        examination=1.0 / (1.0 + np.arange(K)) ** 0.8, valid=valid)
    return traffic, scores


def nbytes(traffic: LoggedTraffic) -> int:
    """Bytes of the container's per-candidate arrays."""
    arrays = [traffic.item_ids, traffic.positions, traffic.pscores, *traffic.labels.values(),
              *traffic.features.values()]
    if traffic.valid is not None:
        arrays.append(traffic.valid)
    return sum(a.nbytes for a in arrays if a is not None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--vectors", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    weights = np.random.default_rng(1).uniform(0.0, 2.0, size=(args.vectors, len(TASKS)))
    logs = {"ragged 10..40 (padded to 40)": make_log(args.requests, 10, 40, 0),
            "dense 25": make_log(args.requests, 25, 25, 0),
            "dense 40": make_log(args.requests, 40, 40, 0)}
    print(f"{args.vectors} weight vectors x {args.requests:,} requests, top-{K}, IPS, "
          f"no interval; best of {args.repeats}")
    print(f"{'log':<30} {'candidates':>11} {'cells':>11} {'MB in memory':>13} "
          f"{'MB of rows':>11} {'ms/vector':>10}")
    for name, (traffic, scores) in logs.items():
        real = int(traffic.candidate_counts.sum())
        cells = traffic.item_ids.size
        mem = nbytes(traffic)
        rows_mb = sum(v.nbytes for v in traffic.to_columns().values()) / 1e6
        feedback = SlateFeedback.from_traffic(traffic)
        replay = Replay(feedback, scores, TASKS, MultiplicativeFusion(), TopKPolicy(K), IPS(),
                        NormalInterval())
        sec = timed(lambda replay=replay: replay.terms(weights), args.repeats) / args.vectors
        print(f"{name:<30} {real:>11,} {cells:>11,} {mem / 1e6:>13.1f} {rows_mb:>11.1f} "
              f"{sec * 1e3:>10.2f}")


if __name__ == "__main__":
    main()
