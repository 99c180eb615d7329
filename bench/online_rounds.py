"""CEM rounds over live A/B groups, played by a world with truth: does pre-screening help?

Claims (issue 15): CEM with offline pre-screening reaches within 1% of the best true value
in at most half the live rounds plain online CEM needs, never exports a pick whose true
value is below control, and the proxy calibration it reports (slope of online on offline
lifts, with a 95% interval) contains the world's true slope.

Each seed is a world (the synthetic marketplace, and the KuaiRand-fitted world when its data
or cached fit is at hand) generating three disjoint sets of requests: a log (replayed by
SNIPS, the offline proxy), a pool of fresh requests the live groups are served on
(:func:`simulator.online.run_groups`, ``--users`` users of ``--requests-per-user`` requests
each per group), and an evaluation set on which every true value is exact
(:func:`simulator.online.true_values`). Model scores are the true probabilities with
log-normal noise (``tests/worldkit.py``'s imperfect ranker). The control is the world's
production weights; every CEM starts there.

Arms, each ``--rounds`` rounds of ``--groups`` groups (plus the control):
- ``online``: CEM's own draws go live;
- ``prescreen``: CEM draws ``--prescreen`` candidates, SNIPS on the log estimates them in
  one pass and each of ``--groups`` random blocks sends its best (the tournament of
  :func:`tuner.study._live_rounds.select_groups`), every group screened;
- ``mixed``: the same draws, but only half the blocks send their best and the others their
  first (plain) draw, ``search ask``'s default (:func:`default_screened`);
- ``offline``: CEM on the log alone (population ``--offline-population``), its pick served
  once (its true value is reported after as many rounds).
``--proxy`` is the offline estimator that pre-screens (``gated_dr``, ``search ask``'s
default, or ``snips``). The pick of every arm is CEM's mean; its export is what ``search
export`` exports by default (the mean when the one-sided 95% lower bound of its paired ``cdr``
lift over the control on the log's held-out half is above 0, else the control). The best
true value is a dense grid search on the evaluation requests (screened on a subsample, then
exact).

Run: ``nice python bench/online_rounds.py [--seeds 5] [--seed-start 0] [--arms ...]
[--worlds marketplace,kuairand] [--proxy gated_dr]``
(about 10 minutes on a busy 2-core machine with the defaults).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulator.estimators import SNIPS, BaseEstimator, GatedDR, SlateFeedback  # noqa: E402
from simulator.fusion import MultiplicativeFusion  # noqa: E402
from simulator.intervals import NormalInterval  # noqa: E402
from simulator.logs import LoggedTraffic  # noqa: E402
from simulator.online import OnlineGroups, run_groups, true_values  # noqa: E402
from simulator.policies import TopKPolicy  # noqa: E402
from simulator.replay import OBJECTIVE, Replay  # noqa: E402
from simulator.worlds import (  # noqa: E402
    BaseWorld,
    KuaiRandConfig,
    KuaiRandWorld,
    MarketplaceConfig,
    MarketplaceWorld,
)
from tuner.evaluation.search_data import HOLDOUT, SEARCH, split_log  # noqa: E402
from tuner.picks.control_test import cdr, one_sided_test  # noqa: E402
from tuner.space import FusionSpace  # noqa: E402
from tuner.strategies import CEM, CEMConfig  # noqa: E402
from tuner.study._live_rounds import (  # noqa: E402
    Calibration,
    calibrate,
    default_screened,
    draw_candidates,
    lift,
    select_groups,
)

OBJECTIVES = {
    "marketplace": {"click": 1.0, "conversion": 10.0, "like": 5.0},
    "kuairand": {"click": 1.0, "long_view": 2.0, "like": 20.0, "profile_enter": 20.0},
}
FUSION = MultiplicativeFusion()
SCORE_NOISE = 0.3
ARMS = ("online", "prescreen", "mixed", "offline")
SCREENING = ("prescreen", "mixed")


@dataclass(frozen=True)
class Setup:
    """One seed's world split into log, pool and evaluation requests, with scores."""

    name: str
    world: BaseWorld
    log: LoggedTraffic
    log_scores: np.ndarray
    pool: LoggedTraffic
    pool_scores: np.ndarray
    evaluation: LoggedTraffic
    eval_scores: np.ndarray
    control: np.ndarray  # [T] production weights
    space: FusionSpace
    objective: dict[str, float]

    def true_objective(self, weights: np.ndarray) -> np.ndarray:
        """``[P]`` exact objective on the evaluation requests."""
        w = np.array([self.objective[t] for t in self.world.tasks])
        return true_values(self.world, self.evaluation, self.eval_scores, FUSION,
                           np.atleast_2d(weights)) @ w

    def wide_true_objective(self, weights: np.ndarray) -> np.ndarray:
        """``[P]`` exact objective on the evaluation and pool requests together: the truth
        the calibration is checked against (lift differences between a round's groups are
        tenths of a percent, so the 10,000 evaluation requests alone are too few)."""
        w = np.array([self.objective[t] for t in self.world.tasks])
        pool = true_values(self.world, self.pool, self.pool_scores, FUSION,
                           np.atleast_2d(weights)) @ w
        r_e, r_p = self.evaluation.n_requests, self.pool.n_requests
        return (self.true_objective(weights) * r_e + pool * r_p) / (r_e + r_p)


def make_setup(name: str, seed: int, log_requests: int, pool_requests: int,
               eval_requests: int, fit: object) -> Setup:
    total = log_requests + pool_requests + eval_requests
    world: BaseWorld
    if name == "marketplace":
        mw = MarketplaceWorld(MarketplaceConfig(n_requests=total, seed=seed))
        world, control = mw, np.asarray(mw.config.logging_weights, dtype=float)
    else:
        kw = KuaiRandWorld(KuaiRandConfig(n_requests=total, seed=seed), fit=fit)  # type: ignore[arg-type]
        world, control = kw, np.asarray(kw.config.logging_weights, dtype=float)
    traffic = world.generate()
    truth = world.true_probabilities(traffic)  # type: ignore[attr-defined]
    z = np.random.default_rng([seed, 7]).standard_normal(truth.shape)
    scores = np.clip(truth * np.exp(SCORE_NOISE * z), 1e-6, 1.0)
    cuts = np.cumsum([0, log_requests, pool_requests, eval_requests])
    parts = [np.arange(a, b) for a, b in itertools.pairwise(cuts)]
    tasks = world.tasks
    space = FusionSpace(tasks, pinned=tasks[0], low=0.0, high=4.0)
    control = control / control[0]
    return Setup(name, world, traffic.take(parts[0]), scores[parts[0]],
                 traffic.take(parts[1]), scores[parts[1]], traffic.take(parts[2]),
                 scores[parts[2]], control, space, OBJECTIVES[name])


def dense_best(s: Setup, seed: int) -> float:
    dim = s.space.dim
    per_axis = {1: 161, 2: 61, 3: 17}.get(dim, 9)
    axis = np.linspace(s.space.low, s.space.high, per_axis)
    grid = np.stack(np.meshgrid(*[axis] * dim), axis=-1).reshape(-1, dim)
    W = s.space.matrix_to_weights(grid)
    rows = np.random.default_rng([seed, 4]).choice(s.evaluation.n_requests, 2000, replace=False)
    w_obj = np.array([s.objective[t] for t in s.world.tasks])
    screen = true_values(s.world, s.evaluation.take(rows), s.eval_scores[np.sort(rows)],
                         FUSION, W) @ w_obj
    keep = np.argsort(-screen)[:60]
    return float(s.true_objective(W[keep]).max())


PROXIES = {"snips": SNIPS, "gated_dr": GatedDR}
"""The offline estimators a run may pre-screen with (``--proxy``)."""


def make_replay(s: Setup, part: LoggedTraffic, estimator: BaseEstimator) -> Replay:
    """The ``estimator``'s replay of one split of the log (its request ids are rows of the
    log)."""
    scores = s.log_scores[part.request_ids]
    fb = SlateFeedback.from_traffic(part, s.world.tasks, reward_model=scores)
    return Replay(fb, scores, s.world.tasks, FUSION, TopKPolicy(part.slate_size), estimator,
                  NormalInterval())


def offline_estimates(replay: Replay, objective: dict[str, float], W: np.ndarray,
                      control: np.ndarray) -> tuple[float, np.ndarray]:
    """The objective of ``control [T]`` and of ``W [P, T]``, estimated in one pass (a
    pooled proxy such as ``gated_dr`` values every vector within its population)."""
    result = replay.evaluate(np.vstack([control[None], W]), objective)
    values = np.asarray(result.value[:, result.metrics.index(OBJECTIVE)])
    return float(values[0]), values[1:]


@dataclass
class ArmRun:
    picks: list[float]  # true objective of CEM's mean after each round
    exports: list[float] = dataclasses.field(default_factory=list)  # true value of the export
    offline: list[float] = dataclasses.field(default_factory=list)  # offline lift per group
    online: list[float] = dataclasses.field(default_factory=list)  # online lift per group
    truth: list[float] = dataclasses.field(default_factory=list)  # true lift per group
    rounds: list[int] = dataclasses.field(default_factory=list)  # round of each group


def exported(s: Setup, holdout: Replay, x: np.ndarray) -> np.ndarray:
    """What ``search export`` exports by default: the pick ``x [dim]`` if the one-sided 95%
    lower bound of its paired ``cdr`` lift over the control on the held-out half is above
    0 (:func:`tuner.picks.control_test.one_sided_test`; ``holdout`` a ``cdr`` replay), else
    the control. Returns full weights ``[T]``."""
    w = s.space.matrix_to_weights(x[None])[0]
    return w if one_sided_test(holdout, w, s.control, s.objective).passed else s.control


def run_arm(arm: str, s: Setup, replay: Replay, holdout: Replay, args: argparse.Namespace,
            seed: int) -> ArmRun:
    m = args.groups if arm != "offline" else args.offline_population
    cem = CEM(s.space, CEMConfig(population=m), seed=seed, init_mean=s.control)
    groups = OnlineGroups(args.users, args.requests_per_user)
    run = ArmRun([])
    true_control = float(s.wide_true_objective(s.control)[0])
    for g in range(args.rounds):
        if arm == "offline":
            X = cem.ask(g)
            _, values = offline_estimates(replay, s.objective, s.space.matrix_to_weights(X),
                                          s.control)
        else:
            if arm in SCREENING:
                cand = draw_candidates(cem, s.space, g, args.prescreen)
                off_control, est = offline_estimates(
                    replay, s.objective, s.space.matrix_to_weights(cand), s.control)
                screened = m if arm == "prescreen" else default_screened(m)
                chosen = select_groups(est, np.ones(len(est), bool), m, screened)
                X, off = cand[chosen], est[chosen]
            else:
                X = cem.ask(g)
                off_control, off = offline_estimates(
                    replay, s.objective, s.space.matrix_to_weights(X), s.control)
            W = np.vstack([s.control[None], s.space.matrix_to_weights(X)])
            got = run_groups(s.world, s.pool, s.pool_scores, FUSION, W, groups,
                             seed=seed * 1000 + g * 10 + ARMS.index(arm), objective=s.objective)
            cv, cse = got[0].mean["objective"], got[0].se["objective"]
            values = np.array([r.mean["objective"] for r in got[1:]])
            truth = s.wide_true_objective(W[1:])
            for i, r in enumerate(got[1:]):
                run.online.append(lift(r.mean["objective"], r.se["objective"], cv, cse).value)
                run.offline.append(off[i] / off_control - 1)
                run.truth.append(truth[i] / true_control - 1)
                run.rounds.append(g)
        cem.tell(g, X, values)
        pick = s.space.matrix_to_weights(cem.pick()[None])[0]
        export = exported(s, holdout, cem.pick())
        truth = s.true_objective(np.vstack([pick, export]))
        run.picks.append(float(truth[0]))
        run.exports.append(float(truth[1]))
    return run


def within_slope(x: np.ndarray, y: np.ndarray, rounds: np.ndarray) -> float:
    """Least-squares slope of ``y`` on ``x``, both centred within rounds (as calibrate)."""
    xc, yc = x.copy(), y.copy()
    for r in np.unique(rounds):
        xc[rounds == r] -= x[rounds == r].mean()
        yc[rounds == r] -= y[rounds == r].mean()
    return float(xc @ yc / (xc @ xc))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--seed-start", type=int, default=0, help="first world seed")
    p.add_argument("--arms", default=",".join(ARMS), help="comma list of " + ", ".join(ARMS))
    p.add_argument("--worlds", default="marketplace,kuairand")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--groups", type=int, default=8)
    p.add_argument("--prescreen", type=int, default=256)
    p.add_argument("--offline-population", type=int, default=32)
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--requests-per-user", type=int, default=10)
    p.add_argument("--log-requests", type=int, default=20000)
    p.add_argument("--proxy", choices=sorted(PROXIES), default="gated_dr",
                   help="the offline estimator that pre-screens (and is calibrated)")
    p.add_argument("--eval-requests", type=int, default=10000)
    return p.parse_args()


def main() -> None:
    args = parse_args()
    import torch

    torch.set_num_threads(1)  # a shared 2-core machine: more threads only contend
    pool = (args.groups + 1) * args.users * args.requests_per_user
    print(f"# online rounds: {args.seeds} seeds, {args.rounds} rounds of {args.groups} groups "
          f"of {args.users} users x {args.requests_per_user} requests (+ control), "
          f"prescreen {args.prescreen} by {args.proxy}, log {args.log_requests} requests, "
          f"truth on {args.eval_requests}\n")
    for name in args.worlds.split(","):
        fit = None
        if name == "kuairand":
            try:
                from simulator.worlds import load_response_model

                fit = load_response_model()
            except (FileNotFoundError, OSError, ValueError) as err:
                print(f"## {name}: skipped ({err})\n")
                continue
        arms = [a for a in ARMS if a in args.arms.split(",")]
        live_arms = [a for a in arms if a != "offline"]
        regrets: dict[str, list[np.ndarray]] = {a: [] for a in arms}
        export_regrets: dict[str, list[np.ndarray]] = {a: [] for a in arms}
        below: dict[str, int] = {a: 0 for a in arms}
        export_below: dict[str, int] = {a: 0 for a in arms}
        cover = {a: 0 for a in live_arms}
        cal_rows: dict[str, list[tuple[int, Calibration, float]]] = {a: [] for a in live_arms}
        heads: list[float] = []
        tick = time.perf_counter()
        for seed in range(args.seed_start, args.seed_start + args.seeds):
            s = make_setup(name, seed, args.log_requests, pool, args.eval_requests, fit)
            halves = split_log(s.log, {SEARCH: 0.5, HOLDOUT: 0.5}, seed=seed)
            # the screening arms estimate with --proxy (search ask --prescreen's default
            # gated_dr); the others, as search ask without --prescreen and search run do,
            # with the study's estimator, SNIPS here
            replays = {"snips": make_replay(s, halves[SEARCH], SNIPS())}
            if args.proxy != "snips":
                replays[args.proxy] = make_replay(s, halves[SEARCH], PROXIES[args.proxy]())
            holdout = make_replay(s, halves[HOLDOUT], cdr())
            runs = {a: run_arm(a, s, replays[args.proxy if a in SCREENING else "snips"],
                               holdout, args, seed) for a in arms}
            control = float(s.true_objective(s.control)[0])
            best = max(dense_best(s, seed), *(max(r.picks) for r in runs.values()))
            for a, r in runs.items():
                regrets[a].append((best - np.array(r.picks)) / best)
                export_regrets[a].append((best - np.array(r.exports)) / best)
                below[a] += int(np.sum(np.array(r.picks) < control))
                export_below[a] += int(np.sum(np.array(r.exports) < control - 1e-12))
            for a in live_arms:
                r = runs[a]
                x, y, t, rr = map(np.asarray, (r.offline, r.online, r.truth, r.rounds))
                cal = calibrate(x, y, rr)
                true_slope = within_slope(x, t, rr)
                cover[a] += int(cal.slope_low <= true_slope <= cal.slope_high)
                cal_rows[a].append((seed, cal, true_slope))
            heads.append((best - control) / best)
        secs = time.perf_counter() - tick
        print(f"## {name} ({secs:.0f} s)\n")
        print("Regret of CEM's mean, (best - true value) / best, after r rounds "
              "(mean [min, max] over seeds):\n")
        header = "| arm | " + " | ".join(f"r={i + 1}" for i in range(args.rounds)) + " |"
        print(header)
        print("|" + "---|" * (args.rounds + 1))
        for a in arms:
            R = np.stack(regrets[a])
            cells = [f"{100 * R[:, i].mean():.2f}% [{100 * R[:, i].min():.2f}, "
                     f"{100 * R[:, i].max():.2f}]" for i in range(args.rounds)]
            print(f"| {a} | " + " | ".join(cells) + " |")
        print("\nRegret of the export (the mean if the one-sided 95% lower bound of its "
              "held-out cdr lift over control is above 0, else the control):\n")
        print(header)
        print("|" + "---|" * (args.rounds + 1))
        for a in arms:
            R = np.stack(export_regrets[a])
            cells = [f"{100 * R[:, i].mean():.2f}% [{100 * R[:, i].min():.2f}, "
                     f"{100 * R[:, i].max():.2f}]" for i in range(args.rounds)]
            print(f"| {a} | " + " | ".join(cells) + " |")
        print()
        for a in arms:
            R = np.stack(regrets[a])
            reach = [int(np.argmax(row <= 0.01)) + 1 if (row <= 0.01).any() else None
                     for row in R]
            shown = ", ".join("never" if v is None else str(v) for v in reach)
            print(f"- {a}: rounds to reach 1% regret per seed: {shown}; means below control: "
                  f"{below[a]} of {args.seeds * args.rounds}, exports below control: "
                  f"{export_below[a]}")
        print("- headroom (best - control) / best per seed: "
              + ", ".join(f"{100 * h:.2f}%" for h in heads))
        for a in live_arms:
            print(f"- {a} calibration (all {args.rounds * args.groups} told groups of a seed): "
                  f"the slope's 95% interval contains the true slope in {cover[a]} of "
                  f"{args.seeds} seeds")
            for seed, cal, ts in cal_rows[a]:
                print(f"  - seed {seed}: r {cal.pearson:.2f}, rank r {cal.spearman:.2f}, "
                      f"slope {cal.slope:.2f} [{cal.slope_low:.2f}, {cal.slope_high:.2f}], "
                      f"true {ts:.2f}")
        print()


if __name__ == "__main__":
    main()
