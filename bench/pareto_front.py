"""Pareto strategies side by side: how good is the front each one finds, in truth?

Claim (README, "Benchmarks"): for the same budget (256 noisy evaluations), CEM over
scalarisations finds fronts of higher true quality than NSGA-II, and both beat random search.
Baselines: NSGA-II, uniform random search, and a dense grid whose true front is the
reference (100%; not a ceiling: a 41 x 41 grid misses vectors between its nodes).

Each seed is a synthetic marketplace with exact truth (``tests/worldkit.py``: model scores =
true probabilities x log-normal noise). Every evaluation is a SNIPS estimate on the search half
of the log (noisy, as in reality). A strategy's front is the non-dominated set of its
*estimates*, what ``search pareto`` would show; it is then scored by the *true* values of its
weight vectors on the whole log: the hypervolume they dominate, normalised by the ideal and
nadir points of the grid's true front (so 100% is the grid's true front; the reference point
is the nadir), and the share of its points that the other strategy's front dominates (in
truth).

Run: ``python bench/pareto_front.py [--seeds 3] [--requests 20000] [--population 32]
[--generations 8] [--metrics click,like]``.

Second mode, for studies made by ``fusiontune search pareto`` (e.g. on ``fusiontune demo``'s
files, where no truth is known): ``python bench/pareto_front.py --storage URL --compare cem
nsga2`` scores each study's front (same metrics) on the search split it was selected on and
on the held-out split it never saw: hypervolume normalised by the ideal and nadir of all the
fronts' held-out values (reference point: that nadir), and the share of each front's points
that another front dominates on held-out estimates.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import optuna
from optuna._hypervolume import compute_hypervolume

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.worldkit

from simulator.estimators import SNIPS  # noqa: E402
from tests.worldkit import SPACE, TASKS, WorldLog, make_log  # noqa: E402
from tuner.evaluation.search_data import HOLDOUT, SEARCH, split_log  # noqa: E402
from tuner.pareto import dominates, pareto_mask  # noqa: E402
from tuner.strategies import (  # noqa: E402
    BaseMultiStrategy,
    CEMConfig,
    NSGA2Multi,
    ScalarisedCEM,
    ScalarisedCEMConfig,
)

CONTROL = np.array([1.0, 0.5, 0.5])  # the marketplace's logging weights
GRID = 41  # GRID x GRID weight vectors of [0, 4]^2 for the reference front
SCALARISATIONS = 4


def true_values(log: WorldLog, W: np.ndarray, chunk: int = 32) -> np.ndarray:
    return np.concatenate([log.true_values(W[a:a + chunk]) for a in range(0, len(W), chunk)])


def hypervolume(Y: np.ndarray, nadir: np.ndarray, ideal: np.ndarray) -> float:
    """Hypervolume of maximised points ``Y [n, K]`` over ``nadir``, normalised to the box."""
    Z = np.clip((Y - nadir) / (ideal - nadir), 0.0, None)
    Z = Z[(Z > 0).all(axis=1)]
    if not len(Z):
        return 0.0
    return float(compute_hypervolume(-Z, np.zeros(Y.shape[1])))


def run(strategy: BaseMultiStrategy, evaluate: object, generations: int
        ) -> tuple[np.ndarray, np.ndarray]:
    Xs, Ys = [], []
    for g in range(generations):
        X = strategy.ask(g)
        Y = evaluate(SPACE.matrix_to_weights(X))  # type: ignore[operator]
        strategy.tell(g, X, Y)
        Xs.append(X)
        Ys.append(Y)
    return np.concatenate(Xs), np.concatenate(Ys)


def compare(url: str, names: list[str]) -> None:
    """Fronts of Pareto studies side by side, on the search and the held-out split."""
    from tuner.evaluation.search_data import SearchSettings, Workspace
    from tuner.pareto import front_of_trials, load_pareto

    fronts, search_y, holdout_y = {}, {}, {}
    ws: Workspace | None = None
    for name in names:
        s = load_pareto(url, name)
        front = front_of_trials(s.study, s.space, s.config.metrics, s.config.directions)
        if ws is None:
            ws = Workspace(SearchSettings.from_dict(s.settings))
        W = np.array([[p.weights[t] for t in s.space.tasks] for p, _ in front.distinct()])
        est = ws.replay(HOLDOUT).evaluate(W)
        cols = [est.metrics.index(m) for m in front.metrics]
        signs = s.config.signs
        fronts[name] = front
        search_y[name] = front.values([p for p, _ in front.distinct()]) * signs
        holdout_y[name] = est.value[:, cols] * signs
    every = np.concatenate(list(holdout_y.values()))
    nadir, ideal = every.min(axis=0), every.max(axis=0)
    print(f"{url}: fronts of {', '.join(names)} on {', '.join(fronts[names[0]].metrics)}\n")
    print("| study | trials | front points (distinct) | HV, search split | HV, held-out |")
    print("|---|---|---|---|---|")
    for name in names:
        f = fronts[name]
        print(f"| {name} | {len(f.trials)} | {len(f.points)} ({len(search_y[name])}) | "
              f"{100 * hypervolume(search_y[name], nadir, ideal):.1f}% | "
              f"{100 * hypervolume(holdout_y[name], nadir, ideal):.1f}% |")
    print("\nshare of the row's front points dominated by the column's front (held-out):\n")
    print("| front \\ by | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for a in names:
        cells = []
        for b in names:
            hit = dominates(holdout_y[b][None, :, :], holdout_y[a][:, None, :]).any(1)
            cells.append("" if a == b else f"{100 * hit.mean():.0f}%")
        print(f"| {a} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", help="database of Pareto studies to --compare")
    parser.add_argument("--compare", nargs="+", metavar="STUDY",
                        help="compare these Pareto studies of --storage instead")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--population", type=int, default=32)
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--metrics", default="click,like")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.compare:
        if not args.storage:
            parser.error("--compare needs --storage")
        compare(args.storage, args.compare)
        return
    idx = [TASKS.index(m) for m in args.metrics.split(",")]
    names = ["cem-linear", "cem-chebyshev", "nsga2", "random"]
    rows: dict[str, list[tuple[float, float, int, float]]] = {n: [] for n in names}
    cover: dict[tuple[str, str], list[float]] = {}
    for seed in range(args.seeds):
        log = make_log(seed, args.requests)
        parts = split_log(log.traffic, {SEARCH: 0.5, HOLDOUT: 0.5}, seed)
        replay = log.part(parts[SEARCH]).replay(SNIPS())

        def evaluate(W: np.ndarray, replay: object = replay) -> np.ndarray:
            return replay.evaluate(W).value[:, idx]  # type: ignore[attr-defined]

        control = evaluate(CONTROL[None])[0]
        g = np.linspace(SPACE.low, SPACE.high, GRID)
        grid = SPACE.matrix_to_weights(np.stack(np.meshgrid(g, g), -1).reshape(-1, 2))
        T_grid = true_values(log, grid)[:, idx]
        best = T_grid[pareto_mask(T_grid)]
        nadir, ideal = best.min(axis=0), best.max(axis=0)
        hv_grid = hypervolume(best, nadir, ideal)
        fronts: dict[str, np.ndarray] = {}
        for name in names:
            start = time.perf_counter()
            k = len(idx)
            if name == "nsga2":
                X, Y = run(NSGA2Multi(SPACE, k, args.population, seed), evaluate,
                           args.generations)
            elif name == "random":
                rng = np.random.default_rng([seed, 99])
                X = rng.uniform(SPACE.low, SPACE.high,
                                (args.population * args.generations, SPACE.dim))
                Y = evaluate(SPACE.matrix_to_weights(X))
            else:
                cfg = ScalarisedCEMConfig(CEMConfig(population=args.population // SCALARISATIONS),
                                          SCALARISATIONS, name.split("-")[1])
                X, Y = run(ScalarisedCEM(SPACE, control, cfg, seed, CONTROL), evaluate,
                           args.generations)
            seconds = time.perf_counter() - start
            on = pareto_mask(Y)
            T = true_values(log, SPACE.matrix_to_weights(X[on]))[:, idx]
            fronts[name] = T
            rows[name].append((hypervolume(T, nadir, ideal) / hv_grid,
                               hypervolume(Y[on], nadir, ideal) / hv_grid, int(on.sum()),
                               seconds))
        for a in names:
            for b in names:
                if a != b:
                    dominated = dominates(fronts[b][None, :, :], fronts[a][:, None, :]).any(1)
                    cover.setdefault((a, b), []).append(float(dominated.mean()))
    n = args.population * args.generations
    print(f"metrics {args.metrics}; {args.seeds} seeds x {args.requests:,} requests (SNIPS on "
          f"the search half); {args.generations} generations x {args.population} = {n} "
          "evaluations per strategy\n")
    print("| strategy | true HV of its front (mean, min-max) | HV its estimates claim | "
          "front points | seconds |")
    print("|---|---|---|---|---|")
    for name in names:
        r = np.array(rows[name])
        print(f"| {name} | {100 * r[:, 0].mean():.1f}% ({100 * r[:, 0].min():.1f}-"
              f"{100 * r[:, 0].max():.1f}) | {100 * r[:, 1].mean():.1f}% | "
              f"{r[:, 2].mean():.1f} | {r[:, 3].mean():.1f} |")
    print("\nshare of the row's front points dominated (in truth) by the column's front:\n")
    print("| front \\ by | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for a in names:
        print(f"| {a} | " + " | ".join(
            "" if a == b else f"{100 * np.mean(cover[(a, b)]):.0f}%" for b in names) + " |")


if __name__ == "__main__":
    main()
