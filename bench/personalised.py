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
[--tau 0.1] [--feature F] [--learned-features F1,F2] [--kmeans 8] [--oracles-only]``;
prints markdown tables. ``--feature`` / ``--learned-features`` replace the world's default
inputs (KuaiRand: its ``user_<task>_rate`` history features); ``--kmeans K`` adds the
oracles on K k-means clusters of the users' task rates (history and true; KuaiRand), the
segments the issue's headroom was measured on; ``--kmeans-segments K`` adds per-segment
CEM on K k-means clusters of the search split's history-rate features, fitted, merged and
assigned by ``tuner.segments.Clusters`` as ``search run --segment-by <the rates>
--segments K`` does; ``--oracles-only`` computes only the control and the oracles, on the
truth split a full run of the same sizes uses.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Iterator
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
from simulator.streaming import ReplayChunk, StreamedReplay  # noqa: E402
from simulator.worlds import (  # noqa: E402
    BaseWorld,
    KuaiRandConfig,
    KuaiRandWorld,
    MarketplaceConfig,
    MarketplaceWorld,
)
from tuner.evaluation.search_data import split_log  # noqa: E402
from tuner.segments import (  # noqa: E402
    Clusters,
    Segmentation,
    SegmentedReplay,
    guard,
    merge_small,
    request_feature,
)
from tuner.segments._learned import (  # noqa: E402
    LogArrays,
    WeightModelConfig,
    train_weight_model,
)
from tuner.segments._personalise import feature_matrix, replay_arrays  # noqa: E402
from tuner.segments._personalise_streamed import concatenate_arrays  # noqa: E402
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


def search_space(world: BaseWorld) -> tuple[FusionSpace, np.ndarray]:
    """The box every CEM of the bench searches (click pinned) and its start, the control
    (logging) weights."""
    return (FusionSpace(world.tasks, pinned="click", low=0.0, high=4.0),
            np.asarray(world.config.logging_weights, dtype=float))  # type: ignore


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


Value = Callable[[np.ndarray], np.ndarray]
"""``W [M, S] -> [M]``: the search split's estimate of the objective of each vector."""


def _value(replay: Replay | StreamedReplay, obj: dict[str, float]) -> Value:
    return lambda W: replay.evaluate(W, obj).value[:, -1]


class InMemorySearch:
    """The search split held whole: one :class:`Replay` (the 20,000-request runs)."""

    def __init__(self, split: Split, obj: dict[str, float], feature: str) -> None:
        self.split, self.obj = split, obj
        self.replay = split.replay()
        self.x = request_feature(split.traffic, feature)
        self.users = split.traffic.user_ids

    def value(self, W: np.ndarray) -> np.ndarray:
        return self.replay.evaluate(W, self.obj).value[:, -1]

    def segments(self, assign: np.ndarray, k: int) -> list[Value]:
        sr = SegmentedReplay(self.replay, assign, k)
        return [_value(sr.segment(s), self.obj) for s in range(k)]

    def events(self, assign: np.ndarray, k: int, control: np.ndarray) -> np.ndarray:
        return SegmentedReplay(self.replay, assign, k).expected_events(control, self.obj)

    def arrays(self, feats: tuple[str, ...]) -> LogArrays:
        return replay_arrays(self.replay, self.split.traffic, self.obj, feats)


class StreamedSearch:
    """The search split as chunks of whole requests (``--chunk``): every evaluation is a
    :class:`~simulator.streaming.StreamedReplay` pass, so the population's memory is one
    chunk's, as a streamed study's; a segment's pass reads its own requests of each chunk.
    The weight model's float32 arrays (:class:`LogArrays`) are kept beside the chunks."""

    def __init__(self, chunks: list[ReplayChunk], x: np.ndarray, users: np.ndarray,
                 arrays: list[LogArrays], tasks: tuple[str, ...], slate: int,
                 obj: dict[str, float]) -> None:
        self.chunks, self.x, self.users, self._arrays, self.obj = chunks, x, users, arrays, obj
        self.tasks, self.slate = tasks, slate
        self.bounds = np.cumsum([0] + [len(c.request_ids) for c in chunks])

    def _replay(self, chunks: Callable[[], Iterator[ReplayChunk]]) -> StreamedReplay:
        return StreamedReplay(chunks, self.tasks, self.tasks, FUSION, TopKPolicy(self.slate),
                              SNIPS(), NormalInterval())

    def value(self, W: np.ndarray) -> np.ndarray:
        return self._replay(lambda: iter(self.chunks)).evaluate(W, self.obj).value[:, -1]

    def _segment(self, assign: np.ndarray, s: int) -> StreamedReplay:
        rows = [np.flatnonzero(assign[a:b] == s) for a, b in zip(self.bounds[:-1],
                                                                 self.bounds[1:], strict=True)]

        def chunks() -> Iterator[ReplayChunk]:
            for c, idx in zip(self.chunks, rows, strict=True):
                if idx.size:
                    yield ReplayChunk(c.request_ids[idx], c.feedback.take(idx), c.scores[idx])

        return self._replay(chunks)

    def segments(self, assign: np.ndarray, k: int) -> list[Value]:
        return [_value(self._segment(assign, s), self.obj) for s in range(k)]

    def events(self, assign: np.ndarray, k: int, control: np.ndarray) -> np.ndarray:
        out = np.zeros(k)
        for s in range(k):
            if (assign == s).any():
                events = self._segment(assign, s).evaluate(control[None], self.obj).events
                assert events is not None  # SNIPS has importance weights
                out[s] = events[0, -1]
        return out

    def arrays(self, feats: tuple[str, ...]) -> LogArrays:
        return concatenate_arrays(self._arrays)


def _noisy(truth_p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Model scores: the true probabilities times log-normal noise (``SCORE_NOISE``)."""
    return np.clip(truth_p * np.exp(SCORE_NOISE * rng.standard_normal(truth_p.shape)),
                   1e-6, 1.0)


def in_memory(world: BaseWorld, world_name: str, seed: int, args: argparse.Namespace
              ) -> tuple[InMemorySearch, Split, Split]:
    """One log of ``search + holdout + truth`` requests, split at random (the 20,000 runs)."""
    n = args.search + args.holdout + args.truth
    traffic = world.generate()
    truth_p = world.true_probabilities(traffic)  # type: ignore[attr-defined]
    scores = _noisy(truth_p, np.random.default_rng([seed, 7]))
    parts = split_log(traffic, {"search": args.search / n, "holdout": args.holdout / n,
                                "truth": args.truth / n}, seed)
    sp = {k: Split(v, scores[v.request_ids]) for k, v in parts.items()}
    return (InMemorySearch(sp["search"], OBJECTIVES[world_name],
                           args.feature or FEATURE[world_name]),
            sp["holdout"], sp["truth"])


def chunked(world: BaseWorld, world_name: str, seed: int, args: argparse.Namespace
            ) -> tuple[StreamedSearch | None, Split | None, Split]:
    """Three independent streams of chunks (``world.generate_chunk``): the search split
    kept as replay chunks (float32 scores), the held-out and truth splits whole."""
    obj, feats = OBJECTIVES[world_name], learned_features(world_name, args)

    def stream(stream_id: int, n: int, first_id: int) -> Iterator[tuple[LoggedTraffic,
                                                                         np.ndarray]]:
        for a in range(0, n, args.chunk):
            part = world.generate_chunk(min(args.chunk, n - a), first_id + a, seed=stream_id)
            truth_p = world.true_probabilities(part)  # type: ignore[attr-defined]
            rng = np.random.default_rng([seed, 7, stream_id, a])
            yield part, _noisy(truth_p, rng).astype(np.float32)

    def whole(stream_id: int, n: int, first_id: int) -> Split:
        got = list(stream(stream_id, n, first_id))
        return Split(LoggedTraffic.concatenate([g[0] for g in got]),
                     np.concatenate([g[1] for g in got]))

    if args.oracles_only:  # the same truth requests as a full run's
        return None, None, whole(3, args.truth, args.search + args.holdout)
    t0 = time.time()
    chunks, xs, arrays, users = [], [], [], []
    for part, scores in stream(1, args.search, 0):
        split = Split(part, scores)
        rep = split.replay()
        # SNIPS reads neither every slot's propensities nor the prefix ones: not kept
        slim = dataclasses.replace(rep.feedback, pscores=None, prefix_pscore=None)
        chunks.append(ReplayChunk(part.request_ids, slim, scores))
        xs.append(request_feature(part, args.feature or FEATURE[world_name]))
        users.append(part.user_ids)
        arrays.append(replay_arrays(rep, part, obj, feats))
        print(f"  search split: {sum(len(c.request_ids) for c in chunks):,} of "
              f"{args.search:,} requests ({time.time() - t0:.0f} s)", file=sys.stderr,
              flush=True)
    search = StreamedSearch(chunks, np.concatenate(xs), np.concatenate(users), arrays,
                            world.tasks, chunks[0].feedback.examination.shape[0], obj)

    hold = whole(2, args.holdout, args.search)
    truth = whole(3, args.truth, args.search + args.holdout)
    print(f"  held-out {args.holdout:,} and truth {args.truth:,} requests "
          f"({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    return search, hold, truth


def run(world_name: str, seed: int, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    n = args.search + args.holdout + args.truth
    world = make_world(world_name, seed, n, args.heterogeneity)
    search, hold_split, truth = (chunked if args.chunk else in_memory)(world, world_name,
                                                                        seed, args)
    tasks = world.tasks
    obj = OBJECTIVES[world_name]
    col = np.array([obj.get(t, 0.0) for t in tasks])
    space, control = search_space(world)
    feat = args.feature or FEATURE[world_name]
    x_t = request_feature(truth.traffic, feat)
    clock = time.time()

    def say(what: str) -> None:
        print(f"  seed {seed}: {what} ({time.time() - clock:.0f} s)", file=sys.stderr,
              flush=True)

    def exact(k_rows: int, seg_t: np.ndarray):  # noqa: ANN202
        return lambda W: true_objective(world, truth, np.repeat(W[:, None], k_rows, 1), seg_t,
                                        col)

    zero_t = np.zeros(len(x_t), dtype=np.int64)
    t_control = true_objective(world, truth, control[None, None], zero_t, col)[0]
    w_oracle = cem(space, exact(1, zero_t), control, args.generations, args.population, seed)

    def oracle(seg_t: np.ndarray, k: int) -> float:
        """The true objective of each segment's best weights, found on the truth of its
        own requests (one segment: the K=1 oracle)."""
        orows = [w_oracle] if k == 1 else []
        for s in range(k if k > 1 else 0):
            mask = seg_t == s
            sub = Split(truth.traffic.take(np.flatnonzero(mask)), truth.scores[mask])
            orows.append(cem(space, lambda W, sub=sub: true_objective(
                world, sub, W[:, None], np.zeros(sub.traffic.n_requests, dtype=np.int64), col),
                control, args.generations, args.population, seed))
        return float(true_objective(world, truth, np.stack(orows)[None], seg_t, col)[0])

    out: dict[str, dict[str, float]] = {"control": {"truth": t_control, "estimate": np.nan},
                                        "oracle K=1": {"truth": true_objective(
                                            world, truth, w_oracle[None, None], zero_t,
                                            col)[0], "estimate": np.nan}}
    for k in args.kmeans if hasattr(world, "user_history_rates") else []:
        # users clustered by their task rates (the k-means segments): on the log's
        # history-rate features, which a server could read, and on the true rates
        for source, rates in [("history", world.user_history_rates()),  # type: ignore
                              ("true", world.user_true_rates())]:  # type: ignore
            seg_t = kmeans_segments(rate_features(world), rates[truth.traffic.user_ids], k,
                                    seed)
            out[f"oracle k-means {k}, {source} rates"] = {"truth": oracle(seg_t,
                                                                          int(seg_t.max()) + 1),
                                                          "estimate": np.nan}
        say(f"k-means oracles, {k} segments")
    if args.oracles_only:
        return out
    assert search is not None and hold_split is not None
    hold = hold_split.replay()
    x_s = search.x
    x_h = request_feature(hold_split.traffic, feat)
    w_global = cem(space, search.value, control, args.generations, args.population, seed)
    say("global CEM")
    t_global = true_objective(world, truth, w_global[None, None], zero_t, col)[0]
    one_h = SegmentedReplay(hold, np.zeros(len(x_h), dtype=np.int64), 1)
    e_global = one_h.personalised([w_global[None]], obj).value[0, -1]
    out["global"] = {"truth": t_global, "estimate": e_global}
    if not args.no_learned:
        out["learned"] = learned(world_name, world, search, hold_split, hold, truth,
                                 w_global, t_global, col, seed, args)
        say("learned model")
    for k in args.kmeans_segments if hasattr(world, "user_history_rates") else []:
        out[f"k-means {k}, history rates"] = kmeans_policy(
            world, search, hold_split, hold, truth, w_global, t_global, obj, k, seed, args)
        say(f"per-segment CEM on k-means {k} clusters of the history rates")
    done: dict[tuple[float, ...], tuple[dict[str, float], dict[str, float]]] = {}
    for k in args.segments:
        seg0 = Segmentation.from_quantiles(feat, x_s, k)

        def events(seg: Segmentation) -> np.ndarray:
            return search.events(seg.assign(x_s), seg.n_segments, control)

        seg, _ = merge_small(seg0, events, MIN_EVENTS)
        key = tuple(seg.edges)
        if key in done:  # the same buckets as a smaller K (a feature of few values)
            out[f"K={k}"], out[f"oracle K={k}"] = done[key]
            continue
        if seg.n_segments == 1:  # the global search, trial for trial (tested)
            rows = w_global[None]
        else:
            values = search.segments(seg.assign(x_s), seg.n_segments)
            rows = np.stack([cem(space, v, control, args.generations, args.population, seed)
                             for v in values])
        say(f"per-segment CEM K={k} ({seg.n_segments} segments)")
        seg_t = seg.assign(x_t)
        t_pers = true_objective(world, truth, rows[None], seg_t, col)[0]
        pe = SegmentedReplay(hold, seg.assign(x_h), seg.n_segments).personalised(
            [rows, np.tile(w_global, (seg.n_segments, 1))], obj, np.array([[1.0, -1.0]]))
        decision = guard(pe)
        t_export = t_pers if decision.personalised else t_global
        t_oracle = oracle(seg_t, seg.n_segments)
        out[f"K={k}"] = {"truth": t_pers, "estimate": pe.value[0, -1],
                         "segments": seg.n_segments, "exported": float(decision.personalised),
                         "export truth": t_export, "lift low": decision.lift["low"],
                         "lift high": decision.lift["high"], "true lift": t_pers - t_global}
        out[f"oracle K={k}"] = {"truth": t_oracle, "estimate": np.nan}
        done[key] = out[f"K={k}"], out[f"oracle K={k}"]
        say(f"K={k} judged and its oracle")
    return out


def learned(world_name: str, world: BaseWorld, search: InMemorySearch | StreamedSearch,
            hold: Split, hold_replay: Replay, truth: Split, w_global: np.ndarray,
            t_global: float,
            col: np.ndarray, seed: int, args: argparse.Namespace) -> dict[str, float]:
    """The learned weight model from the global pick (``search personalise``'s steps):
    trained on the search split, its held-out estimate and guard, its truth."""
    feats = learned_features(world_name, args)
    obj = OBJECTIVES[world_name]
    tasks = world.tasks
    cfg = WeightModelConfig(epochs=args.epochs, tau=args.tau, seed=seed,
                            patience=args.patience, batch_requests=args.batch_requests)
    model = train_weight_model(search.arrays(feats), w_global, feats, tasks, cfg,
                               pinned=tasks.index("click"))
    x_h = feature_matrix(hold.traffic, feats)
    r_h = len(x_h)
    pe = per_request_estimate(hold_replay, np.stack(
        [model.weights(x_h), np.tile(w_global, (r_h, 1))]), obj, np.array([[1.0, -1.0]]))
    decision = guard(pe)
    t = true_per_request(world, truth, model.weights(feature_matrix(truth.traffic, feats))[None],
                         col)[0]
    return {"truth": t, "estimate": pe.value[0, -1], "segments": 0.0,
            "exported": float(decision.personalised),
            "export truth": t if decision.personalised else t_global,
            "lift low": decision.lift["low"], "lift high": decision.lift["high"],
            "true lift": t - t_global, "epochs": float(model.epochs_run),
            "best epoch": float(model.best_epoch)}


def rate_features(world: BaseWorld) -> tuple[str, ...]:
    """The log's history-rate features, one per task (``user_<task>_rate``)."""
    return tuple(f"user_{t}_rate" for t in world.tasks)


def kmeans_segments(names: tuple[str, ...], rates: np.ndarray, k: int, seed: int
                    ) -> np.ndarray:
    """``[R]`` the k-means segment (``tuner.segments.Clusters``, the CLI's) of each request's
    user-rate vector ``rates [R, T]``, fitted on those rows."""
    return Clusters.from_kmeans(names, rates, k, seed)[0].assign(rates)


def kmeans_policy(world: BaseWorld, search: InMemorySearch | StreamedSearch, hold_split: Split,
                  hold: Replay, truth: Split, w_global: np.ndarray, t_global: float,
                  obj: dict[str, float], k: int, seed: int, args: argparse.Namespace
                  ) -> dict[str, float]:
    """Per-segment CEM on ``k`` k-means clusters of the users' history rates, fitted on the
    search split as ``search run --segment-by <the rates> --segments k`` fits them
    (:class:`~tuner.segments.Clusters`, small clusters merged): its truth, held-out
    estimate and guard, as a quantile segmentation's row."""
    space, control = search_space(world)
    names = rate_features(world)
    rates = world.user_history_rates()  # type: ignore[attr-defined]
    x_s = rates[search.users]  # the log's features of the search split's requests
    seg0, _ = Clusters.from_kmeans(names, x_s, k, seed)
    seg, _ = merge_small(seg0, lambda c: search.events(c.assign(x_s), c.n_segments, control),
                         MIN_EVENTS)
    a_s = seg.assign(x_s)
    a_h, a_t = (seg.assign(rates[u]) for u in (hold_split.traffic.user_ids,
                                               truth.traffic.user_ids))
    m = seg.n_segments
    rows = np.stack([cem(space, v, control, args.generations, args.population, seed)
                     for v in search.segments(a_s, m)])
    col = np.array([obj.get(t, 0.0) for t in world.tasks])
    t_pers = true_objective(world, truth, rows[None], a_t, col)[0]
    pe = SegmentedReplay(hold, a_h, m).personalised(
        [rows, np.tile(w_global, (m, 1))], obj, np.array([[1.0, -1.0]]))
    decision = guard(pe)
    return {"truth": t_pers, "estimate": pe.value[0, -1], "segments": float(m),
            "exported": float(decision.personalised),
            "export truth": t_pers if decision.personalised else t_global,
            "lift low": decision.lift["low"], "lift high": decision.lift["high"],
            "true lift": t_pers - t_global}


def learned_features(world_name: str, args: argparse.Namespace) -> tuple[str, ...]:
    """The learned model's inputs: ``--learned-features``, else the world's default."""
    if args.learned_features:
        return tuple(f.strip() for f in args.learned_features.split(",") if f.strip())
    return LEARNED_FEATURES[world_name]


def _fmt(xs: list[float], scale: float = 100.0) -> str:
    a = np.asarray(xs) * scale
    return f"{a.mean():+.2f} ± {a.std(ddof=1) if len(a) > 1 else 0.0:.2f}"


def report(world_name: str, results: list[dict[str, dict[str, float]]],
           args: argparse.Namespace) -> None:
    print(f"\n### {world_name}, taste_heterogeneity {args.heterogeneity}, search "
          f"{args.search:,}, {len(results)} seeds; segments of "
          f"{args.feature or FEATURE[world_name]}, learned model on "
          f"{','.join(learned_features(world_name, args))}\n")
    base = "global" if "global" in results[0] else "oracle K=1"  # --oracles-only
    print(f"| policy | true lift vs control % | vs {base} % | held-out est. - truth % "
          "| exported (seeds) | exported vs global % | covers true lift |")
    print("|---|---|---|---|---|---|---|")
    for name in results[0]:
        ctrl = [r["control"]["truth"] for r in results]
        glob = [r[base]["truth"] for r in results]
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
        fit = r.get("learned", {"epochs": 0, "best epoch": 0})
        print()
        if any("segments" in v for v in r.values()):  # not with --oracles-only
            print(f"seed {args.first_seed + i}: learned model trained {int(fit['epochs'])} "
                  f"epochs (kept {int(fit['best epoch'])}); segments after merging "
                  + ", ".join(f"{k}: {int(v['segments'])}" for k, v in r.items()
                              if "segments" in v and k != "learned")
                  + "; held-out lift of personalised over global "
                  + ", ".join(f"{k}: [{v['lift low']:+.4f}, {v['lift high']:+.4f}] (true "
                              f"{v['true lift']:+.4f})" for k, v in r.items()
                              if "segments" in v))
        print(f"seed {args.first_seed + i}: true objective per request, "
              + ", ".join(f"{k} {v['truth']:.5f}" for k, v in r.items()))
        best = r["oracle K=1"]["truth"]
        for o in [k for k in r if k == "oracle K=8" or k.startswith("oracle k-means")]:
            # the share of an 8-segment (or k-means) oracle's gain over the global optimum
            top = r[o]["truth"]
            if top > best and any("exported" in v for v in r.values()):
                print(f"seed {args.first_seed + i}: share of the {o} gain over the K=1 "
                      "oracle (global optimum) realised: " + ", ".join(
                          f"{k} {(r[k]['truth'] - best) / (top - best):+.2f}"
                          for k in r if "exported" in r[k]))


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
    p.add_argument("--patience", type=int, default=WeightModelConfig().patience,
                   help="the learned model's epochs without a better validation surrogate")
    p.add_argument("--batch-requests", type=int, default=None,
                   help="the learned model's requests per Adam step (default: by size)")
    p.add_argument("--no-learned", action="store_true", help="skip the learned model")
    p.add_argument("--chunk", type=int, default=0,
                   help="draw the splits in chunks of this many requests from independent "
                        "streams and replay the search split chunk by chunk (a streamed "
                        "replay: large logs); 0: one log split at random, held whole")
    p.add_argument("--feature", default=None,
                   help="the request-level log feature the segments are quantiles of "
                        f"(default per world: {FEATURE})")
    p.add_argument("--learned-features", default=None,
                   help="comma-separated inputs of the learned model "
                        f"(default per world: {LEARNED_FEATURES})")
    p.add_argument("--kmeans", default="",
                   help="comma-separated K: oracles on K k-means clusters of the users' "
                        "task rates, on the log's history-rate features and on the true "
                        "rates (worlds with user rates: KuaiRand)")
    p.add_argument("--kmeans-segments", default="",
                   help="comma-separated K: per-segment CEM on K k-means clusters of the "
                        "users' history rates, fitted on the search split as 'search run "
                        "--segment-by' fits them (worlds with user rates: KuaiRand)")
    p.add_argument("--oracles-only", action="store_true",
                   help="only the control and the oracles, on the truth split a full run "
                        "with the same --search/--holdout/--truth/--chunk uses")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None,
                   help="also write every seed's results (true values, estimates, guard) here")
    args = p.parse_args()
    args.segments = [int(k) for k in args.segments.split(",") if k]
    args.kmeans = [int(k) for k in args.kmeans.split(",") if k]
    args.kmeans_segments = [int(k) for k in args.kmeans_segments.split(",") if k]
    everything: dict[str, list[dict[str, dict[str, float]]]] = {}
    for world_name in args.worlds.split(","):
        t0 = time.time()
        results = everything.setdefault(world_name, [])
        # the table so far after every seed: a cut run still tells
        for s in range(args.first_seed, args.first_seed + args.seeds):
            results.append(run(world_name, s, args))
            report(world_name, results, args)
            print(f"\n({time.time() - t0:.0f} s)", flush=True)
            if args.json is not None:
                args.json.write_text(json.dumps(
                    {"args": {k: v for k, v in vars(args).items() if k != "json"},
                     "results": everything},
                    indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
