"""Strategies side by side: true regret of each strategy's pick against evaluations.

Claim (DESIGN.md, "Two facts about the search"): on noisy replay estimates, CEM's
pick (its final mean) is the most robust of CEM, TPE, CMA-ES and random: regret
0.4-0.7% at 1,000 evaluations against 1.6-5.3% for TPE. Baselines: Optuna's TPE,
CMA-ES, random search and NSGA-II, and steady-state CEM, all through the same
ask/tell interface (``tuner.strategies.STRATEGIES``) and the same budget.

Each seed is a synthetic marketplace (``tests/worldkit.py``: a world with exact
truth, model scores = true probabilities x log-normal noise). Every evaluation is a
SNIPS estimate on the search half of the log (noisy, as in reality). A strategy's
pick is what a user would export: CEM's and steady-state CEM's Gaussian mean, the
best observed trial of the Optuna baselines. True values are exact, on the whole
log (search and held-out halves), so regret also counts what a pick overfits to the
search half's noise. The best true value is that of a dense grid search of the 2-D space (screened
on a subsample of requests, then exact on the whole log), or of any pick if higher;
regret = (best - true value of the pick) / best. A second table scores every
strategy's best observed trial instead, to separate the search from the pick.

Run: ``python bench/strategy_regret.py [--seeds 5] [--requests 10000]
[--population 50] [--generations 20] [--jobs 2] [--plot PATH]`` (needs the
``bench`` extra: matplotlib, cmaes). Prints markdown tables of regret (mean and max
over seeds) at 200, 500 and 1,000 evaluations and writes a PNG plot (default
``runs/strategy_regret.png``, which git ignores).
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.worldkit

from simulator.estimators import SNIPS  # noqa: E402
from tests.worldkit import SPACE, WorldLog, make_log  # noqa: E402
from tuner.evaluation.search_data import HOLDOUT, SEARCH, split_log  # noqa: E402
from tuner.strategies import STRATEGIES  # noqa: E402

GRID = 121  # dense search: GRID x GRID points of [0, 4]^2
SCREEN_REQUESTS = 1000
SCREEN_KEEP = 300


@dataclass(frozen=True)
class SeedResult:
    """True values on one world; per strategy ``[generations]`` after each generation."""

    seed: int
    dense_best: float
    pick_truth: dict[str, np.ndarray]  # truth of strategy.pick()
    trial_truth: dict[str, np.ndarray]  # truth of the best-estimated trial so far
    seconds: dict[str, float]


def dense_best(log: WorldLog, seed: int) -> float:
    """Best true value of a ``GRID x GRID`` grid, screened on ``SCREEN_REQUESTS`` requests."""
    axis = np.linspace(SPACE.low, SPACE.high, GRID)
    grid = SPACE.matrix_to_weights(np.stack(np.meshgrid(axis, axis), axis=-1).reshape(-1, 2))
    rows = np.random.default_rng([seed, 4]).choice(log.traffic.n_requests, SCREEN_REQUESTS,
                                                   replace=False)
    screen = log.part(log.traffic.take(rows)).true_objective(grid)
    keep = np.argsort(-screen)[:SCREEN_KEEP]
    return float(log.true_objective(grid[keep]).max())


def run_seed(seed: int, names: list[str], requests: int, population: int,
             generations: int) -> SeedResult:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    log = make_log(seed, requests)
    search = log.part(split_log(log.traffic, {SEARCH: 0.5, HOLDOUT: 0.5}, seed=seed)[SEARCH])
    replay = search.replay(SNIPS())
    picks: dict[str, np.ndarray] = {}
    trials: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    for name in names:
        start = time.perf_counter()
        strategy = STRATEGIES[name].create(SPACE, population, seed)
        pick_x, trial_x = [], []
        best_x, best_value = None, -np.inf
        for g in range(generations):
            X = strategy.ask(g)
            values = search.estimate(replay, SPACE.matrix_to_weights(X))
            strategy.tell(g, X, values)
            i = int(np.nanargmax(values))
            if values[i] > best_value:
                best_x, best_value = X[i].copy(), float(values[i])
            pick_x.append(strategy.pick())
            trial_x.append(best_x)
        seconds[name] = time.perf_counter() - start
        truth = log.true_objective(SPACE.matrix_to_weights(np.stack(pick_x + trial_x)))
        picks[name], trials[name] = truth[:generations], truth[generations:]
    return SeedResult(seed, dense_best(log, seed), picks, trials, seconds)


def regret_table(results: list[SeedResult], attr: str, names: list[str], population: int,
                 checkpoints: list[int]) -> tuple[str, dict[str, np.ndarray]]:
    """Markdown table and ``{name: regret % [seeds, generations]}``."""
    regrets = {}
    for name in names:
        rows = []
        for r in results:
            best = max(r.dense_best, *(v.max() for v in r.pick_truth.values()),
                       *(v.max() for v in r.trial_truth.values()))
            rows.append(100.0 * (best - getattr(r, attr)[name]) / best)
        regrets[name] = np.stack(rows)
    header = "| strategy | " + " | ".join(f"{c} evals mean / max" for c in checkpoints) + " |"
    lines = [header, "|---|" + "---|" * len(checkpoints)]
    for name in names:
        cells = []
        for c in checkpoints:
            col = regrets[name][:, c // population - 1]
            cells.append(f"{col.mean():.2f}% / {col.max():.2f}%")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines), regrets


def plot(path: Path, panels: list[tuple[str, dict[str, np.ndarray]]], population: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(6.0 * len(panels), 4.2), sharey=True)
    for ax, (title, regrets) in zip(np.atleast_1d(axes), panels, strict=True):
        for name, r in regrets.items():
            evals = population * np.arange(1, r.shape[1] + 1)
            (line,) = ax.plot(evals, r.mean(axis=0), label=f"{name} (mean)", linewidth=1.8)
            ax.plot(evals, r.max(axis=0), color=line.get_color(), linewidth=0.9,
                    linestyle="--", alpha=0.7)
        ax.set_ylim(bottom=0.0)
        ax.set_xlabel("evaluations (noisy SNIPS estimates)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("true regret, % of best (solid: mean, dashed: max)")
    np.atleast_1d(axes)[0].legend(fontsize=8, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--population", type=int, default=50)
    parser.add_argument("--generations", type=int, default=20)
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--checkpoints", default="200,500,1000")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--plot", type=Path, default=Path("runs/strategy_regret.png"))
    args = parser.parse_args()
    names = args.strategies.split(",")
    if "cmaes" in names:
        try:
            import cmaes  # noqa: F401
        except ImportError:
            print("note: skipping cmaes (Optuna's CmaEsSampler needs the 'cmaes' package: "
                  "pip install 'fusiontune[bench]')")
            names.remove("cmaes")
    budget = args.population * args.generations
    checkpoints = [c for c in map(int, args.checkpoints.split(","))
                   if c <= budget and c % args.population == 0]
    start = time.perf_counter()
    jobs = [(seed, names, args.requests, args.population, args.generations)
            for seed in range(args.seeds)]
    if args.jobs > 1:
        with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
            results = pool.starmap(run_seed, jobs)
    else:
        results = [run_seed(*job) for job in jobs]
    elapsed = time.perf_counter() - start
    print(f"{len(results)} worlds of {args.requests} requests (search half: SNIPS), "
          f"{args.generations} generations x {args.population} = {budget} evaluations per "
          f"strategy; {elapsed:.0f} s with {args.jobs} processes")
    for r in results:
        secs = ", ".join(f"{n} {s:.0f}s" for n, s in r.seconds.items())
        print(f"seed {r.seed}: dense best {r.dense_best:.4f}; {secs}")
    own, own_r = regret_table(results, "pick_truth", names, args.population, checkpoints)
    trial, trial_r = regret_table(results, "trial_truth", names, args.population, checkpoints)
    print("\nTrue regret of each strategy's pick (CEM, steady CEM: Gaussian mean; "
          "Optuna baselines: best observed trial):\n")
    print(own)
    print("\nTrue regret of the best observed trial (the winner's curse), every strategy:\n")
    print(trial)
    plot(args.plot, [("each strategy's pick", own_r), ("best observed trial", trial_r)],
         args.population)
    print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
