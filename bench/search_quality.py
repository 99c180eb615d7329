"""Search quality against exact truth: does the search fit the noise of its search split?

Claim tested (issue 13): plain CEM on a replay of a fixed search split converges onto that
split's noise, so its true regret grows with the budget. Measured side by side, from the
same search runs: CEM (today's default) and ``smooth-cem`` (elites ranked by a
kernel-smoothed local linear surface; the mean's step and sigma's shrinking weighted by
the evidence for the step), each scored as its mean, as today's export of it (control
unless its held-out lift interval clears 0), and as the split-sample picks of
:mod:`tuner.picks.validated` ("last rounds": among the last ``LAST`` means; "validated",
what ``search export --validated`` does: among the means after rounds 1, 2, 4, 8, ... and
the last), forced and exported.

Each world seed logs ``2 x`` a search size of requests (KuaiRand-fitted world, needing
``../shared/data/kuairand-pure``, or the marketplace), split in half (search, held-out) as
the demo does; model scores are the true probabilities times log-normal noise 0.3 (as
``bench/estimator_quality.py``); every evaluation is SNIPS on the search half, or with
``--search-estimator snips,gated_dr`` also ``gated_dr`` (each generation pooled, as
``fusiontune search run --estimator gated_dr`` does), side by side on the same logs, seeds,
budgets and optimum (methods tagged ``@gated_dr``; SNIPS's keep their old names, so older
per-seed lines pool with new ones); ``auc`` and ``gauc`` rank by the fused-score AUC proxy
(``fusiontune search run --estimator auc|gauc``; their best trial's gap is no lift, so its
winner's-curse cell is nan). Objective:
KuaiRand ``click + 2 long_view + 20 like + 20 profile_enter``, marketplace ``click + 10
conversion + 5 like``. Control: the world's logging weights (CEM's start).

Truth is exact (``world.expected_rewards`` under the top-K exposure) on all the log's
requests. The optimum: a dense grid of the box screened on a subsample, its best points
refined by a CEM on the truth (no noise), exact on the whole log; regret of a pick =
``(optimum - truth(pick)) / (optimum - truth(control))`` in %, so 100% is control and a
negative regret cannot happen except where a pick beats the refined optimum (the optimum
is then raised to it). The winner's-curse gap of a reported value is ``(reported lift -
true lift) / true optimum lift`` in %: for the best trial's search-split estimate, and for
the exported pick's held-out estimate.

Run: ``python bench/search_quality.py [--worlds kuairand,marketplace] [--seeds 0-5]
[--search-seeds 0,1,2] [--sizes 20000,80000,320000] [--budgets 96,288,992] [--strategies
cem,smooth-cem] [--grid 13]``; prints markdown tables (mean +- std over world x search
seeds, and the worst). Seeds 100-101 were used to tune ``smooth-cem``; report on others.
The control rules were judged (README) with ``--strategies cem --grid 9 --sizes 20000
--budgets 96,288,992 --seeds 0-5`` on each world, search seeds 0 and 1,2 in two runs; the
per-seed lines (``# world size seed ...: regret % method/search-seed r,r,r``) carry every
run's regrets, so runs can be pooled. Cost: a search of 992 evaluations on 20,000 requests
is ~31 replay passes of 32 vectors, ~30 s of one core (~2 min on a busy shared 2-core
machine); it scales with the requests (80,000: 4x, 320,000: 16x), so the full default
design (2 worlds x 6 x 3 seeds x 3 sizes x 2 strategies) is ~12 core-hours; a reduced run
is ``--worlds kuairand --seeds 0-3 --search-seeds 0 --sizes 20000`` (~40 min wall there).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for bench.estimator_quality

from bench.estimator_quality import Log, make_log, reward_model, true_values  # noqa: E402
from simulator.estimators import SNIPS, BaseEstimator, SlateFeedback  # noqa: E402
from simulator.fusion import MultiplicativeFusion  # noqa: E402
from simulator.intervals import NormalInterval  # noqa: E402
from simulator.logs import LoggedTraffic  # noqa: E402
from simulator.policies import TopKPolicy  # noqa: E402
from simulator.replay import OBJECTIVE, Replay  # noqa: E402
from simulator.report import ab_report  # noqa: E402
from tuner.evaluation.objective import FusionObjective  # noqa: E402
from tuner.evaluation.search_data import HOLDOUT, SEARCH, split_log  # noqa: E402
from tuner.picks.control_test import (  # noqa: E402
    cdr,
    choose_on_search,
    gated_dr,
    one_sided_test,
)
from tuner.picks.picking import BEST_CANDIDATES, candidate_rounds  # noqa: E402
from tuner.picks.validated import validated_pick  # noqa: E402
from tuner.space import FusionSpace  # noqa: E402
from tuner.strategies import STRATEGIES, BaseStrategy  # noqa: E402

OBJECTIVES = {
    "kuairand": {"click": 1.0, "long_view": 2.0, "like": 20.0, "profile_enter": 20.0},
    "marketplace": {"click": 1.0, "conversion": 10.0, "like": 5.0},
}
POPULATION = 32
SCREEN_REQUESTS = 5_000
REFINE_REQUESTS = 40_000
LAST = 5  # candidates of the validated pick: the means after the last LAST rounds
ESTIMATOR_TAG = {"snips": "", "gated_dr": "@gated_dr", "auc": "@auc", "gauc": "@gauc"}
"""``--search-estimator`` names and the tag each adds to a method's name (SNIPS adds none,
so the per-seed lines of runs before the option pool with today's)."""


PICKS = ("mean", "mean, export", "mean, one-sided export", "last rounds",
         "last rounds, export", "validated", "validated, export", "validated on search",
         "validated on search, one-sided export", "best by stored value", "best by gated_dr",
         "best by gated_dr, one-sided export")
"""What is scored per search run: the strategy's mean (``search export --force-pick``),
today's export of it (control unless its held-out lift clears 0), the split-sample
choice among the last ``LAST`` means (forced), and its export (control unless its
report-fold lift clears 0); "validated" is what ``search export --validated`` does: the same
split-sample choice among the means after rounds 1, 2, 4, 8, ... and the last
(:func:`tuner.picks.picking.candidate_rounds`: the budget chosen on held-out requests).
The one-sided rule (:mod:`tuner.picks.control_test`, ``search export``'s default): "mean,
one-sided export" is the mean unless the one-sided 95% lower bound of its ``cdr`` paired
lift over control on the whole held-out split is above 0; "validated on search" is the
mean after one of the same rounds chosen by ``gated_dr`` on the search split (what
``search export --validated`` now does), and its one-sided export tests it as the mean.
"best by stored value" is ``search export --best --order estimate --force-pick`` (the best
trial by its search-split value, reported on the held-out split); "best by gated_dr" is
``search export --best`` (``--order auto``): of the
``BEST_CANDIDATES`` best trials so far by their search-split value, the first by
``gated_dr`` pooled over them on the search split; its one-sided export tests it so."""


@dataclass(frozen=True)
class Run:
    """One (world, size, world seed, search seed, strategy, pick): per budget, the true
    regret and the winner's-curse gaps, all in % of the optimum's lift."""

    world: str
    size: int
    seed: int
    search_seed: int
    method: str
    regret: dict[int, float]
    exported_control: dict[int, bool]
    best_trial_gap: dict[int, float]
    report_gap: dict[int, float]


def _sub(log: Log, traffic: LoggedTraffic) -> Log:
    return dataclasses.replace(log, traffic=traffic, scores=log.scores[traffic.request_ids])


def _replay(log: Log, estimator: BaseEstimator | None = None) -> Replay:
    feedback = SlateFeedback.from_traffic(log.traffic, log.world.tasks,
                                          reward_model=reward_model(log))
    return Replay(feedback, log.scores, log.world.tasks, MultiplicativeFusion(),
                  TopKPolicy(log.traffic.slate_size), estimator or SNIPS(), NormalInterval())


class Truth:
    """Exact objective of full weight vectors ``[P, T]`` on a log's requests."""

    def __init__(self, log: Log, objective: dict[str, float]) -> None:
        self.log = log
        self.vector = np.array([objective.get(t, 0.0) for t in log.world.tasks])

    def __call__(self, weights: np.ndarray) -> np.ndarray:
        return true_values(self.log, np.atleast_2d(weights)) @ self.vector


def optimum(log: Log, space: FusionSpace, truth: Truth, objective: dict[str, float],
            seed: int, grid: int) -> float:
    """Best true objective: grid screened on a subsample, refined by CEM on the truth."""
    rng = np.random.default_rng([seed, 41])
    n = log.traffic.n_requests
    screen = Truth(_sub(log, log.traffic.take(rng.choice(n, min(n, SCREEN_REQUESTS),
                                                         replace=False))), objective)
    axis = np.linspace(space.low, space.high, grid)
    X = np.stack(np.meshgrid(*[axis] * space.dim), axis=-1).reshape(-1, space.dim)
    values = screen(space.matrix_to_weights(X))
    refine = (truth if n <= REFINE_REQUESTS else Truth(_sub(log, log.traffic.take(
        rng.choice(n, REFINE_REQUESTS, replace=False))), objective))
    starts = X[np.argsort(-values)[:3]]
    best = []
    cem = STRATEGIES["cem"]
    for i, x0 in enumerate(starts):
        strategy = cem.create(space, 16, seed=1000 + i, init_mean=x0, init_sigma=0.1,
                              sigma_floor=0.005, elite_fraction=0.25)
        for g in range(8):
            Xg = strategy.ask(g)
            strategy.tell(g, Xg, refine(space.matrix_to_weights(Xg)))
        best.append(strategy.pick())
    return float(truth(space.matrix_to_weights(np.vstack([starts, *best]))).max())


def run_strategy(name: str, space: FusionSpace, search: Replay | Any, holdout: Replay,
                 objective: dict[str, float], control: np.ndarray, budgets: list[int],
                 search_seed: int, calibrated: tuple[Replay, Replay],
                 ) -> dict[int, dict[str, tuple[np.ndarray, float]]]:
    """Search on ``search`` by ask/tell; per budget and pick (``PICKS``, plus ``"best
    trial"``), the weights ``[T]`` and the lift over control reported for them (the best
    trial's: its search-split estimate; a control export: 0). ``calibrated``: the search
    split's ``gated_dr`` replay and the held-out split's ``cdr`` replay.

    ``search``'s estimator is what every evaluation of the search is (SNIPS, or
    ``gated_dr``: each generation's 32 vectors pooled together, as ``fusiontune search
    run --estimator gated_dr`` does); the held-out figures are the same either way."""
    search_gated, holdout_cdr = calibrated
    base, _, text = name.partition("{")
    hyper = dict(kv.split("=") for kv in text.rstrip("}").split(";") if kv)
    strategy: BaseStrategy = STRATEGIES[base].create(
        space, POPULATION, search_seed, init_mean=space.from_weights(control),
        **{k: float(v) for k, v in hyper.items()})
    first = search.evaluate(control[None], objective)
    m = first.metrics.index(OBJECTIVE)
    control_search = float(first.value[0, m])
    means: list[np.ndarray] = []
    best_x, best_value = space.from_weights(control), -np.inf
    tried: list[np.ndarray] = []  # every trial's point and value, for --best's ranking
    tried_values: list[np.ndarray] = []
    out: dict[int, dict[str, tuple[np.ndarray, float]]] = {}
    for g in range(max(budgets) // POPULATION):
        X = strategy.ask(g)
        values = search.evaluate(space.matrix_to_weights(X), objective).value[:, m]
        strategy.tell(g, X, values)
        means.append(space.matrix_to_weights(strategy.pick()[None])[0])
        i = int(np.nanargmax(values))
        if values[i] > best_value:
            best_x, best_value = X[i].copy(), float(values[i])
        tried.append(np.array(X, dtype=float))
        tried_values.append(np.asarray(values, dtype=float))
        budget = (g + 1) * POPULATION
        if budget not in budgets:
            continue
        row = ab_report(holdout, control, means[-1], objective).row(OBJECTIVE)
        beats = row.lift.low > 0
        choice = validated_pick(holdout, np.stack(means[-LAST:]), control, objective)
        lift_v = choice.report.row(OBJECTIVE).lift.value
        rounds = candidate_rounds(g + 1)
        early = validated_pick(holdout, np.stack([means[r - 1] for r in rounds]), control,
                               objective)
        lift_e = early.report.row(OBJECTIVE).lift.value
        mean_test = one_sided_test(holdout_cdr, means[-1], control, objective)
        on_search = choose_on_search(search_gated, np.stack([means[r - 1] for r in rounds]),
                                     control, objective).weights
        search_test = one_sided_test(holdout_cdr, on_search, control, objective)
        lift_s = ab_report(holdout, control, on_search, objective).row(OBJECTIVE).lift.value
        every, every_v = np.vstack(tried), np.concatenate(tried_values)
        top = np.argsort(-np.where(np.isfinite(every_v), every_v, -np.inf),
                         kind="stable")[:BEST_CANDIDATES]
        top_w = space.matrix_to_weights(every[top])
        ranked = search_gated.evaluate(top_w, objective).value[:, m]
        by_gated = top_w[int(np.argmax(ranked))]
        best_test = one_sided_test(holdout_cdr, by_gated, control, objective)
        lift_b = ab_report(holdout, control, by_gated, objective).row(OBJECTIVE).lift.value
        best_w = space.matrix_to_weights(best_x[None])[0]
        lift_t = ab_report(holdout, control, best_w, objective).row(OBJECTIVE).lift.value
        out[budget] = {
            "mean, one-sided export": (means[-1], row.lift.value) if mean_test.passed
            else (control, 0.0),
            "validated on search": (on_search, lift_s),
            "validated on search, one-sided export": (on_search, lift_s)
            if search_test.passed else (control, 0.0),
            "validated": (early.weights, lift_e),
            "validated, export": (early.weights, lift_e) if early.beats_control
            else (control, 0.0),
            "mean": (means[-1], row.lift.value),
            "mean, export": (means[-1], row.lift.value) if beats else (control, 0.0),
            "last rounds": (choice.weights, lift_v),
            "last rounds, export": (choice.weights, lift_v) if choice.beats_control
            else (control, 0.0),
            "best by stored value": (best_w, lift_t),
            "best by gated_dr": (by_gated, lift_b),
            "best by gated_dr, one-sided export": (by_gated, lift_b) if best_test.passed
            else (control, 0.0),
            # an ordering score's gap over control is in no metric's units: not a lift
            "best trial": (best_w,
                           np.nan if isinstance(search, OrderingSearch)
                           else best_value - control_search),
        }
    return out


class OrderingSearch:
    """A search split ranked by an ordering score (``fusiontune search run --estimator
    auc|gauc``): ``evaluate`` gives the proxy where a replay gives its estimates."""

    def __init__(self, objective: FusionObjective) -> None:
        self.objective = objective

    def evaluate(self, weights: np.ndarray, objective: dict[str, float]) -> Any:
        assert dict(objective) == dict(self.objective.objective)
        return self.objective.population(np.atleast_2d(weights))[0]


def _say(text: str) -> None:
    """A progress line on stderr, timestamped (UTC), for watching a long run."""
    print(f"[{time.strftime('%H:%M:%S', time.gmtime())}] {text}", file=sys.stderr, flush=True)


def one(world: str, size: int, seed: int, search_seeds: list[int], strategies: list[str],
        budgets: list[int], grid: int, fit: object,
        search_estimators: tuple[str, ...] = ("snips",)) -> list[Run]:
    """Every (search seed, strategy, search estimator) run on one world seed's log, scored
    against one optimum (its dense grid and refinement are shared by all of them)."""
    objective = OBJECTIVES[world]
    log = make_log(world, seed, 2 * size, fit)
    parts = split_log(log.traffic, {SEARCH: 0.5, HOLDOUT: 0.5}, seed=seed)
    search, holdout = _replay(_sub(log, parts[SEARCH])), _replay(_sub(log, parts[HOLDOUT]))
    space = FusionSpace(log.world.tasks, pinned=log.world.tasks[0], low=0.0, high=4.0)
    control = np.asarray(log.logging_weights, dtype=float)
    calibrated = (_replay(_sub(log, parts[SEARCH]), gated_dr()),
                  _replay(_sub(log, parts[HOLDOUT]), cdr()))
    searches: dict[str, Any] = {"snips": search, "gated_dr": calibrated[0]}
    for kind in ("auc", "gauc"):  # the fused-score AUC proxies, as --estimator auc|gauc
        if kind in search_estimators:
            searches[kind] = OrderingSearch(FusionObjective(search, objective, ordering=kind))
    truth = Truth(log, objective)
    t_control = float(truth(control)[0])
    runs = []
    for s in search_seeds:
        for name in strategies:
            for est in search_estimators:
                runs.append((s, name + ESTIMATOR_TAG[est], run_strategy(
                    name, space, searches[est], holdout, objective, control, budgets, s,
                    calibrated)))
                _say(f"{world} {size} seed {seed}: {name} on {est}, search seed {s} done")
    vectors = [w for _, _, r in runs for b in budgets for w, _ in r[b].values()]
    values = iter(truth(np.stack(vectors)))
    true = [[{k: float(next(values)) for k in r[b]} for b in budgets] for _, _, r in runs]
    _say(f"{world} {size} seed {seed}: searches done; the optimum (grid {grid}^{space.dim})")
    t_opt = max(optimum(log, space, truth, objective, seed, grid),
                *(v for per in true for d in per for v in d.values()))
    lift = t_opt - t_control
    out = []
    for (s, name, r), per in zip(runs, true, strict=True):
        for pick in PICKS:
            regret, control_flag, trial_gap, report_gap = {}, {}, {}, {}
            for b, t in zip(budgets, per, strict=True):
                w, reported = r[b][pick]
                regret[b] = 100.0 * (t_opt - t[pick]) / lift
                control_flag[b] = bool(np.allclose(w, control))
                trial_gap[b] = 100.0 * (r[b]["best trial"][1] - (t["best trial"] - t_control)
                                        ) / lift
                report_gap[b] = 100.0 * (reported - (t[pick] - t_control)) / lift
            out.append(Run(world, size, seed, s, f"{name}: {pick}", regret, control_flag,
                           trial_gap, report_gap))
    return out


def _seeds(text: str) -> list[int]:
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(x) for x in text.split(",")]


def table(runs: list[Run], budgets: list[int], attr: str, title: str) -> str:
    keys = sorted({(r.world, r.size, r.method) for r in runs})
    lines = [f"\n{title}\n", "| world | search requests | method | runs | "
             + " | ".join(f"{b} evals: mean ± std (worst)" for b in budgets) + " |",
             "|---|---|---|---|" + "---|" * len(budgets)]
    for world, size, method in keys:
        rows = [r for r in runs if (r.world, r.size, r.method) == (world, size, method)]
        cells = []
        for b in budgets:
            v = np.array([getattr(r, attr)[b] for r in rows])
            worst = v.max() if attr != "report_gap" else v[np.argmax(np.abs(v))]
            cells.append(f"{v.mean():.1f} ± {v.std(ddof=1) if len(v) > 1 else 0:.1f} "
                         f"({worst:.1f})")
        lines.append(f"| {world} | {size:,} | {method} | {len(rows)} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def pooled(paths: list[str], budgets: list[int]) -> str:
    """The true-regret table of the per-seed lines of earlier runs' outputs, pooled (mean ±
    std over every (world seed, search seed) run, and the worst); a run repeated in two
    files counts once."""
    line = re.compile(r"# (\w+) (\d+) seed (\d+) \(\d+ s\): regret % (.*)")
    regret: dict[tuple[str, int, str], dict[tuple[int, int], list[float]]] = {}
    for path in paths:
        for text in Path(path).read_text().splitlines():
            m = line.fullmatch(text.strip())
            if m is None:
                continue
            world, size, seed = m[1], int(m[2]), int(m[3])
            for entry in m[4].split("; "):
                method, _, rest = entry.rpartition("/")
                search_seed, values = rest.split(" ")
                regret.setdefault((world, size, method), {})[(seed, int(search_seed))] = [
                    float(v) for v in values.split(",")]
    lines = ["| world | search requests | method | runs | "
             + " | ".join(f"{b} evals: mean ± std (worst)" for b in budgets) + " |",
             "|---|---|---|---|" + "---|" * len(budgets)]
    for (world, size, method), runs in sorted(regret.items()):
        v = np.array(list(runs.values()))  # [runs, budgets]
        cells = [f"{v[:, j].mean():.1f} ± {v[:, j].std(ddof=1) if len(v) > 1 else 0:.1f} "
                 f"({v[:, j].max():.1f})" for j in range(len(budgets))]
        lines.append(f"| {world} | {size:,} | {method} | {len(v)} | " + " | ".join(cells)
                     + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pool", nargs="+", metavar="OUTPUT", default=None,
                   help="print the regret table of these earlier outputs' per-seed lines, "
                   "pooled, and run nothing")
    p.add_argument("--worlds", default="kuairand,marketplace")
    p.add_argument("--seeds", default="0-5", help="world seeds, '0-5' or '0,1'")
    p.add_argument("--search-seeds", default="0,1,2")
    p.add_argument("--sizes", default="20000,80000,320000", help="search split requests")
    p.add_argument("--budgets", default="96,288,992")
    p.add_argument("--strategies", default="cem,smooth-cem",
                   help="registered names, each optionally with settings: "
                   "'cem{sigma_floor=0.1;elite_fraction=0.5}'")
    p.add_argument("--grid", type=int, default=13, help="dense grid points per axis")
    p.add_argument("--search-estimator", default="snips",
                   help="what every evaluation of the search is, a list run side by side "
                   f"on the same logs and seeds: {','.join(ESTIMATOR_TAG)}")
    args = p.parse_args()
    search_estimators = tuple(args.search_estimator.split(","))
    unknown = [e for e in search_estimators if e not in ESTIMATOR_TAG]
    if unknown:
        p.error(f"--search-estimator {unknown} unknown; valid: {list(ESTIMATOR_TAG)}")
    budgets = [int(b) for b in args.budgets.split(",")]
    bad = [b for b in budgets if b % POPULATION]
    if bad:
        p.error(f"--budgets {bad} are not multiples of the population {POPULATION}")
    if args.pool is not None:
        print(pooled(args.pool, budgets))
        return
    fit = None
    if "kuairand" in args.worlds:
        from simulator.worlds import load_response_model

        fit = load_response_model()
    runs: list[Run] = []
    start = time.perf_counter()
    for world in args.worlds.split(","):
        for size in map(int, args.sizes.split(",")):
            for seed in _seeds(args.seeds):
                tick = time.perf_counter()
                new = one(world, size, seed, _seeds(args.search_seeds),
                          args.strategies.split(","), budgets, args.grid, fit,
                          search_estimators)
                runs.extend(new)
                summary = "; ".join(f"{r.method}/{r.search_seed} " + ",".join(
                    f"{r.regret[b]:.1f}" for b in budgets) for r in new)
                print(f"# {world} {size} seed {seed} ({time.perf_counter() - tick:.0f} s): "
                      f"regret % {summary}", flush=True)
    print(f"\n{len(runs)} runs in {time.perf_counter() - start:.0f} s")
    print(table(runs, budgets, "regret", "True regret of the exported pick, % of the "
                "optimum's lift over control (100%: control; lower is better)"))
    print(table(runs, budgets, "best_trial_gap", "Winner's curse of the best trial: its "
                "search-split lift minus its true lift, % of the optimum's lift"))
    print(table(runs, budgets, "report_gap", "Gap of the exported pick's reported "
                "(held-out) lift: reported minus true, % of the optimum's lift"))
    for method in sorted({r.method for r in runs}):
        rows = [r for r in runs if r.method == method]
        below = sum(r.regret[b] > 100.0 + 1e-9 for r in rows for b in budgets)
        ctrl = sum(r.exported_control[b] for r in rows for b in budgets)
        print(f"{method}: below control in truth {below} of {len(rows) * len(budgets)}; "
              f"control exported {ctrl}")


if __name__ == "__main__":
    main()
