"""Personalised fusion weights against the global pick, in truth, on both worlds.

Claim (README, "Personalised weights"): per-segment CEM pays only with enough traffic per
segment, so personalisation is exported only when its held-out paired lift over the
global pick is significant (``tuner.segments.guard``); the exported policy is then never
worse in truth than the global pick. Baselines: the control (logging) weights and global
CEM on the same search split; the oracle finds each segment's best weights on the truth.

Per world and seed: a log of ``search + holdout + truth`` requests (model scores = true
probabilities x log-normal noise, as ``tests/worldkit.py``). Global CEM and per-segment
CEM (``K`` quantile segments of ``user_activity`` / ``user_active_degree`` on the search
split; segments with fewer than ``MIN_EVENTS`` expected objective events merged) search
on the search split's SNIPS estimates; each pick's held-out estimate is the stratified
SNIPS estimate on the held-out split, the guard's paired lift is personalised minus
global there, and every TRUE value is exact on the truth split (requests neither search
nor held-out saw). Winner's-curse gap = held-out estimate - truth.

The learned row is ``search personalise``'s steps: the weight model
(:mod:`tuner.segments._learned`, inputs ``LEARNED_FEATURES``) starts at global CEM's pick,
trains on the search split, is valued per request on the held-out split and guarded like
the segments; its truth is exact on the truth split with its weights per request.

Run: ``nice python bench/personalised.py [--worlds marketplace,kuairand] [--seeds 5]
[--first-seed 0] [--search 20000] [--holdout 20000] [--truth 40000] [--segments 2,4,8]
(``""``: none) [--heterogeneity 0] [--generations 10] [--population 32] [--epochs 300]
[--tau 0.1]``; prints markdown tables.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulator.estimators import SNIPS, SlateFeedback  # noqa: E402
from simulator.fusion import MultiplicativeFusion  # noqa: E402
from simulator.intervals import NormalInterval  # noqa: E402
from simulator.logs import LoggedTraffic  # noqa: E402
from simulator.policies import TopKPolicy, top_k  # noqa: E402
from simulator.replay import MIN_EVENTS, Replay  # noqa: E402
from simulator.worlds import (  # noqa: E402
    BaseWorld,
    KuaiRandConfig,
    KuaiRandWorld,
    MarketplaceConfig,
    MarketplaceWorld,
)
from tuner.evaluation.search_data import split_log  # noqa: E402
from tuner.segments import (  # noqa: E402
    Segmentation,
    SegmentedReplay,
    guard,
    merge_small,
    request_feature,
)
from tuner.segments._learned import WeightModelConfig, train_weight_model  # noqa: E402
from tuner.segments._personalise import feature_matrix, replay_arrays  # noqa: E402
from tuner.segments._replay import per_request_estimate  # noqa: E402
from tuner.space import FusionSpace  # noqa: E402
from tuner.strategies import CEM, CEMConfig  # noqa: E402

FUSION = MultiplicativeFusion()
SCORE_NOISE = 0.3
OBJECTIVES = {
    "marketplace": {"click": 1.0, "conversion": 10.0, "like": 5.0},
    "kuairand": {"click": 1.0, "long_view": 1.0, "like": 10.0, "profile_enter": 10.0},
}
FEATURE = {"marketplace": "user_activity", "kuairand": "user_active_degree"}
LEARNED_FEATURES = {"marketplace": ("user_activity", "user_segment"),
                    "kuairand": ("user_active_degree", "tab")}
CELLS = 4_000_000  # fused scores held at once by the exact truth


@dataclass(frozen=True)
class Split:
    """One split of a world's log: its traffic and model scores ``[R, N, T]``."""

    traffic: LoggedTraffic
    scores: np.ndarray

    def replay(self) -> Replay:
        fb = SlateFeedback.from_traffic(self.traffic)
        return Replay(fb, self.scores, self.traffic.tasks, FUSION,
                      TopKPolicy(self.traffic.slate_size), SNIPS(), NormalInterval())


def make_world(name: str, seed: int, n: int, h: float) -> BaseWorld:
    if name == "marketplace":
        return MarketplaceWorld(MarketplaceConfig(n_requests=n, seed=seed,
                                                  taste_heterogeneity=h))
    return KuaiRandWorld(KuaiRandConfig(n_requests=n, seed=seed, taste_heterogeneity=h))


def true_objective(world: BaseWorld, split: Split, rows: np.ndarray, segments: np.ndarray,
                   objective: np.ndarray) -> np.ndarray:
    """``[P]`` exact objective of ``P`` personalised policies ``rows [P, K, S]`` on a split
    whose requests fall in ``segments [R]``."""
    return true_per_request(world, split, rows, objective, segments)


def true_per_request(world: BaseWorld, split: Split, rows: np.ndarray, objective: np.ndarray,
                     segments: np.ndarray | None = None) -> np.ndarray:
    """``[P]`` exact objective of ``P`` policies: request ``r`` of policy ``p`` ranked by
    ``rows[p, segments[r]]`` (``rows [P, K, S]``), or by ``rows[p, r]`` (``[P, R, S]``,
    weights per request) when ``segments`` is None."""
    reward = world.expected_rewards(split.traffic) @ objective  # [R, N]
    transformed = FUSION.transform(split.scores)  # [R, N, S]
    exam = world.examination
    r, n = reward.shape
    out = np.zeros(len(rows))
    step = max(1, CELLS // (len(rows) * n))
    for a in range(0, r, step):
        w = rows[:, a:a + step] if segments is None else rows[:, segments[a:a + step]]
        fused = np.einsum("cns,pcs->pcn", transformed[a:a + step], w.astype(np.float32))
        slates = top_k(fused, len(exam))  # [P, c, K]
        got = reward[a:a + step][np.arange(slates.shape[1])[None, :, None], slates]
        out += (got @ exam).sum(axis=1)
    return out / r


def cem(space: FusionSpace, value: object, init: np.ndarray, gens: int, pop: int,
        seed: int) -> np.ndarray:
    """CEM's final mean as weights, maximising ``value(W [M, S]) -> [M]``."""
    strategy = CEM(space, CEMConfig(population=pop), seed=seed, init_mean=init)
    for g in range(gens):
        X = strategy.ask(g)
        strategy.tell(g, X, value(space.matrix_to_weights(X)))  # type: ignore[operator]
    return space.matrix_to_weights(strategy.pick()[None])[0]


def run(world_name: str, seed: int, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    n = args.search + args.holdout + args.truth
    world = make_world(world_name, seed, n, args.heterogeneity)
    traffic = world.generate()
    truth_p = world.true_probabilities(traffic)  # type: ignore[attr-defined]
    z = np.random.default_rng([seed, 7]).standard_normal(truth_p.shape)
    scores = np.clip(truth_p * np.exp(SCORE_NOISE * z), 1e-6, 1.0)
    parts = split_log(traffic, {"search": args.search / n, "holdout": args.holdout / n,
                                "truth": args.truth / n}, seed)
    sp = {k: Split(v, scores[v.request_ids]) for k, v in parts.items()}
    tasks = traffic.tasks
    obj = OBJECTIVES[world_name]
    col = np.array([obj.get(t, 0.0) for t in tasks])
    control = np.asarray(world.config.logging_weights, dtype=float)  # type: ignore
    space = FusionSpace(tasks, pinned="click", low=0.0, high=4.0)
    search, hold, truth = sp["search"].replay(), sp["holdout"].replay(), sp["truth"]
    feat = FEATURE[world_name]
    x_s, x_h = (request_feature(sp[k].traffic, feat) for k in ("search", "holdout"))
    x_t = request_feature(truth.traffic, feat)
    out: dict[str, dict[str, float]] = {}

    def est(rep: Replay):  # noqa: ANN202
        return lambda W: rep.evaluate(W, obj).value[:, -1]

    def exact(k_rows: int, seg_t: np.ndarray):  # noqa: ANN202
        return lambda W: true_objective(world, truth, np.repeat(W[:, None], k_rows, 1), seg_t,
                                        col)

    zero_t = np.zeros(len(x_t), dtype=np.int64)
    t_control = true_objective(world, truth, control[None, None], zero_t, col)[0]
    w_global = cem(space, est(search), control, args.generations, args.population, seed)
    t_global = true_objective(world, truth, w_global[None, None], zero_t, col)[0]
    one_h = SegmentedReplay(hold, np.zeros(len(x_h), dtype=np.int64), 1)
    e_global = one_h.personalised([w_global[None]], obj).value[0, -1]
    w_oracle = cem(space, exact(1, zero_t), control, args.generations, args.population, seed)
    out["control"] = {"truth": t_control, "estimate": np.nan}
    out["global"] = {"truth": t_global, "estimate": e_global}
    out["oracle K=1"] = {"truth": true_objective(world, truth, w_oracle[None, None], zero_t,
                                                 col)[0], "estimate": np.nan}
    out["learned"] = learned(world_name, world, sp, w_global, t_global, col, seed, args)
    for k in args.segments:
        seg0 = Segmentation.from_quantiles(feat, x_s, k)

        def events(seg: Segmentation) -> np.ndarray:
            return SegmentedReplay(search, seg.assign(x_s), seg.n_segments).expected_events(
                control, obj)

        seg, _ = merge_small(seg0, events, MIN_EVENTS)
        sr = SegmentedReplay(search, seg.assign(x_s), seg.n_segments)
        rows = np.stack([cem(space, est(sr.segment(s)), control, args.generations,
                             args.population, seed) for s in range(seg.n_segments)])
        seg_t = seg.assign(x_t)
        t_pers = true_objective(world, truth, rows[None], seg_t, col)[0]
        pe = SegmentedReplay(hold, seg.assign(x_h), seg.n_segments).personalised(
            [rows, np.tile(w_global, (seg.n_segments, 1))], obj, np.array([[1.0, -1.0]]))
        decision = guard(pe)
        t_export = t_pers if decision.personalised else t_global
        # the oracle: each segment's best weights found on the truth of its own requests
        orows = []
        for s in range(seg.n_segments):
            mask = seg_t == s
            sub = Split(truth.traffic.take(np.flatnonzero(mask)), truth.scores[mask])
            orows.append(cem(space, lambda W, sub=sub: true_objective(
                world, sub, W[:, None], np.zeros(sub.traffic.n_requests, dtype=np.int64), col),
                control, args.generations, args.population, seed))
        t_oracle = true_objective(world, truth, np.stack(orows)[None], seg_t, col)[0]
        out[f"K={k}"] = {"truth": t_pers, "estimate": pe.value[0, -1],
                         "segments": seg.n_segments, "exported": float(decision.personalised),
                         "export truth": t_export, "lift low": decision.lift["low"],
                         "lift high": decision.lift["high"], "true lift": t_pers - t_global}
        out[f"oracle K={k}"] = {"truth": t_oracle, "estimate": np.nan}
    return out


def learned(world_name: str, world: BaseWorld, sp: dict[str, Split], w_global: np.ndarray,
            t_global: float, col: np.ndarray, seed: int,
            args: argparse.Namespace) -> dict[str, float]:
    """The learned weight model from the global pick (``search personalise``'s steps):
    trained on the search split, its held-out estimate and guard, its truth."""
    feats = LEARNED_FEATURES[world_name]
    obj = OBJECTIVES[world_name]
    tasks = sp["search"].traffic.tasks
    search = sp["search"].replay()
    cfg = WeightModelConfig(epochs=args.epochs, tau=args.tau, seed=seed)
    model = train_weight_model(replay_arrays(search, sp["search"].traffic, obj, feats),
                               w_global, feats, tasks, cfg, pinned=tasks.index("click"))
    x_h = feature_matrix(sp["holdout"].traffic, feats)
    r_h = len(x_h)
    pe = per_request_estimate(sp["holdout"].replay(), np.stack(
        [model.weights(x_h), np.tile(w_global, (r_h, 1))]), obj, np.array([[1.0, -1.0]]))
    decision = guard(pe)
    truth = sp["truth"]
    t = true_per_request(world, truth, model.weights(feature_matrix(truth.traffic, feats))[None],
                         col)[0]
    return {"truth": t, "estimate": pe.value[0, -1], "segments": 0.0,
            "exported": float(decision.personalised),
            "export truth": t if decision.personalised else t_global,
            "lift low": decision.lift["low"], "lift high": decision.lift["high"],
            "true lift": t - t_global, "epochs": float(len(model.history)),
            "best epoch": float(model.best_epoch)}


def _fmt(xs: list[float], scale: float = 100.0) -> str:
    a = np.asarray(xs) * scale
    return f"{a.mean():+.2f} ± {a.std(ddof=1) if len(a) > 1 else 0.0:.2f}"


def report(world_name: str, results: list[dict[str, dict[str, float]]],
           args: argparse.Namespace) -> None:
    print(f"\n### {world_name}, taste_heterogeneity {args.heterogeneity}, search "
          f"{args.search:,}, {len(results)} seeds\n")
    print("| policy | true lift vs control % | vs global % | held-out est. - truth % "
          "| exported (seeds) | exported vs global % | covers true lift |")
    print("|---|---|---|---|---|---|---|")
    for name in results[0]:
        ctrl = [r["control"]["truth"] for r in results]
        glob = [r["global"]["truth"] for r in results]
        tv = [r[name]["truth"] for r in results]
        lift = [t / c - 1 for t, c in zip(tv, ctrl, strict=True)]
        vs_g = [t / g - 1 for t, g in zip(tv, glob, strict=True)]
        gap = [(r[name]["estimate"] - r[name]["truth"]) / r["control"]["truth"]
               for r in results]
        cells = [name, _fmt(lift), _fmt(vs_g), "-" if np.isnan(gap).all() else _fmt(gap)]
        if "exported" in results[0][name]:
            ex = [r[name]["export truth"] / r["global"]["truth"] - 1 for r in results]
            cover = sum(r[name]["lift low"] <= r[name]["true lift"] <= r[name]["lift high"]
                        for r in results)
            cells += [f"{sum(int(r[name]['exported']) for r in results)}/{len(results)}",
                      _fmt(ex) + f" (min {100 * min(ex):+.2f})", f"{cover}/{len(results)}"]
        else:
            cells += ["-", "-", "-"]
        print("| " + " | ".join(cells) + " |")
    for i, r in enumerate(results):
        fit = r["learned"]
        print(f"\nseed {args.first_seed + i}: learned model trained {int(fit['epochs'])} "
              f"epochs (kept {int(fit['best epoch'])}); segments after merging "
              + ", ".join(f"{k}: {int(v['segments'])}" for k, v in r.items()
                          if "segments" in v and k != "learned")
              + "; held-out lift of personalised over global "
              + ", ".join(f"{k}: [{v['lift low']:+.4f}, {v['lift high']:+.4f}] (true "
                          f"{v['true lift']:+.4f})" for k, v in r.items() if "segments" in v))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worlds", default="marketplace,kuairand")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--search", type=int, default=20000)
    p.add_argument("--holdout", type=int, default=20000)
    p.add_argument("--truth", type=int, default=40000)
    p.add_argument("--segments", default="2,4,8")
    p.add_argument("--heterogeneity", type=float, default=0.0)
    p.add_argument("--generations", type=int, default=10)
    p.add_argument("--population", type=int, default=32)
    p.add_argument("--epochs", type=int, default=300, help="the learned model's most epochs")
    p.add_argument("--tau", type=float, default=WeightModelConfig().tau,
                   help="the learned model's soft-rank temperature")
    p.add_argument("--first-seed", type=int, default=0)
    args = p.parse_args()
    args.segments = [int(k) for k in args.segments.split(",") if k]
    for world_name in args.worlds.split(","):
        t0 = time.time()
        results = []
        # the table so far after every seed: a cut run still tells
        for s in range(args.first_seed, args.first_seed + args.seeds):
            results.append(run(world_name, s, args))
            report(world_name, results, args)
            print(f"\n({time.time() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
