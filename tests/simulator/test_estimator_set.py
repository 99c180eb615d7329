"""The full estimator set against exact truths of tiny slate worlds.

Four worlds share one logger (epsilon-greedy top-K, exact propensities) and
differ in how a slot's label depends on the slate:

* ``pbm``: position-based, ``E[y_k] = examination[k] * r(s_k)``;
* ``additive``: item-position effects the PBM cannot express,
  ``E[y_k] = phi(k, s_k)`` (still additive over slots);
* ``cascade``: a click above lowers examination below (depends on the prefix);
* ``lookahead``: the label depends on the item *below* (a strong next item
  makes the slot worth more): breaks every assumption here, the prefix one too.

Labels are drawn independently per slot with these means; every estimator is
(a ratio of) linear in the labels, so only the means matter for bias.
"""

from __future__ import annotations

import dataclasses
import itertools
from functools import cache

import numpy as np
import pytest

from simulator.estimators import (
    IPS,
    RIPS,
    SNDR,
    SNIPS,
    BaseEstimator,
    ClippedIPS,
    DirectMethod,
    DoublyRobust,
    PseudoInverse,
    SlateFeedback,
    Switch,
    SwitchDR,
    make_estimator,
)
from simulator.estimators._pi import epsilon_greedy_coefficients
from simulator.fusion import MultiplicativeFusion
from simulator.intervals import NormalInterval, point_values
from simulator.logs import LoggedTraffic, LogValidationError
from simulator.policies import EpsilonGreedyTopK, TopKPolicy, top_k
from simulator.replay import Replay

TASKS = ("click", "like")
WEIGHTS = np.array([[1.0, 0.0], [0.2, 1.0], [1.0, 1.0]])
FUSION = MultiplicativeFusion()
N_SEEDS = 120
R, N, K, EPS = 300, 6, 3, 0.4
EXAM = 1.0 / (1.0 + np.arange(K)) ** 0.8
IDENTITY = np.eye(len(TASKS))


@dataclasses.dataclass(frozen=True)
class World:
    kind: str
    rewards: np.ndarray  # [R, N, T] E[label | examined]
    bump: np.ndarray  # [R, N, K] item-position effect of the additive world
    scores: np.ndarray  # [R, N, T] a noisy reward model

    def phi(self) -> np.ndarray:
        """``[R, N, K, T]`` expected label of candidate n in slot k (pbm / additive)."""
        base = EXAM[None, None, :, None] * self.rewards[:, :, None, :]
        return base if self.kind == "pbm" else np.clip(base * self.bump[..., None], 0, 1)

    def mean_labels(self, slates: np.ndarray) -> np.ndarray:
        """``[..., R, K]`` slates -> ``[..., R, K, T]`` expected labels per slot."""
        rows = np.arange(R)[:, None]
        if self.kind in ("pbm", "additive"):
            return self.phi()[rows, slates, np.arange(K)]
        r_s = self.rewards[rows, slates]  # [..., R, K, T]
        base = EXAM[:, None] * r_s
        if self.kind == "cascade":
            no_click = np.cumprod(1.0 - base[..., 0], axis=-1)
            before = np.concatenate([np.ones_like(no_click[..., :1]), no_click[..., :-1]], -1)
            return base * before[..., None]
        below = np.concatenate([0.1 + 1.5 * r_s[..., 1:, 0], np.ones_like(r_s[..., :1, 0])], -1)
        return np.clip(base * below[..., None], 0, 1)


def make_world(kind: str) -> World:
    g = np.random.default_rng(777)
    rewards = g.uniform(0.05, 0.6, size=(R, N, len(TASKS)))
    bump = g.uniform(0.2, 1.8, size=(R, N, K))
    scores = np.clip(rewards * np.exp(g.normal(0, 0.3, rewards.shape)), 1e-3, 0.999)
    return World(kind, rewards, bump, scores)


def make_log(world: World, seed: int) -> LoggedTraffic:
    rng = np.random.default_rng(seed)
    logger = EpsilonGreedyTopK(k=K, epsilon=EPS)
    logging_score = np.log(world.scores[..., 0]) + 0.2 * np.random.default_rng(1).normal(
        size=(R, N))
    slates = logger.sample(logging_score, seed=seed)
    positions = np.full((R, N), -1, dtype=np.int64)
    np.put_along_axis(positions, slates, np.arange(K)[None], axis=1)
    labels_k = (rng.random((R, K, len(TASKS))) < world.mean_labels(slates)).astype(float)
    labels = np.zeros((R, N, len(TASKS)))
    np.put_along_axis(labels, slates[..., None], labels_k, axis=1)
    return LoggedTraffic(
        request_ids=np.arange(R, dtype=np.int64), user_ids=np.arange(R, dtype=np.int64),
        item_ids=np.tile(np.arange(N, dtype=np.int64), (R, 1)), positions=positions,
        pscores=logger.pscores(logging_score),
        labels={t: labels[..., i] for i, t in enumerate(TASKS)}, examination=EXAM,
        prefix_pscores=logger.prefix_probabilities(logging_score, positions),
    )


def fused(world: World) -> np.ndarray:
    return FUSION.fuse(FUSION.transform(world.scores), WEIGHTS)  # [P, R, N]


def truth(world: World) -> np.ndarray:
    """``[P, T]`` exact value of the deterministic top-K target."""
    return world.mean_labels(top_k(fused(world), K)).sum(axis=-2).mean(axis=-2)


# (label, estimator, reward model: "noisy" scores or the "exact" rewards)
ENTRIES: dict[str, tuple[BaseEstimator, str]] = {
    "ips": (IPS(), "noisy"),
    "clipped_ips_loose": (ClippedIPS(clip=1e6), "noisy"),
    "clipped_ips_tight": (ClippedIPS(clip=1.5), "noisy"),
    "snips": (SNIPS(), "noisy"),
    "dr": (DoublyRobust(), "noisy"),
    "sndr": (SNDR(), "noisy"),
    "switch_exact": (Switch(tau=3.0), "exact"),
    "switch_dr_exact": (SwitchDR(tau=3.0), "exact"),
    "switch_dr_noisy": (SwitchDR(tau=1e-9), "noisy"),
    "dm_exact": (DirectMethod(), "exact"),
    "dm_noisy": (DirectMethod(), "noisy"),
    "rips": (RIPS(), "noisy"),
    "pi": (PseudoInverse(), "noisy"),
}


@cache
def errors(kind: str) -> dict[str, np.ndarray]:
    """label -> ``[S, P, T]`` estimate minus truth over seeds."""
    world = make_world(kind)
    target, f = truth(world), fused(world)
    out: dict[str, list[np.ndarray]] = {k: [] for k in ENTRIES}
    for seed in range(N_SEEDS):
        traffic = make_log(world, seed)
        for label, (est, model) in ENTRIES.items():
            q = world.rewards if model == "exact" else world.scores
            fb = SlateFeedback.from_traffic(traffic, reward_model=q)
            terms = est.policy_terms(fb, TopKPolicy(K), f)
            out[label].append(point_values(terms, IDENTITY) - target)
    return {k: np.array(v) for k, v in out.items()}


def z_scores(kind: str, label: str) -> np.ndarray:
    e = errors(kind)[label]
    return e.mean(axis=0) / (e.std(axis=0, ddof=1) / np.sqrt(N_SEEDS) + 1e-12)


UNBIASED = [
    ("pbm", "ips"), ("pbm", "clipped_ips_loose"), ("pbm", "snips"), ("pbm", "dr"),
    ("pbm", "sndr"), ("pbm", "switch_exact"), ("pbm", "switch_dr_exact"), ("pbm", "dm_exact"),
    ("pbm", "rips"), ("pbm", "pi"),
    ("additive", "rips"), ("additive", "pi"),
    ("cascade", "rips"),
]
BIASED = [
    ("pbm", "dm_noisy"),  # a biased reward model
    ("pbm", "switch_dr_noisy"),  # tau -> 0 is the direct method
    ("pbm", "clipped_ips_tight"),  # clipping biases down
    ("additive", "ips"),  # item-position effects break the PBM
    ("cascade", "ips"),  # a cascade is not position-based
    ("lookahead", "ips"),
]
# PI's and RIPS's biases in these worlds are real but small next to their
# variance; the exact enumeration below shows them without sampling noise.


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "label"), UNBIASED, ids=lambda x: x)
def test_unbiased_where_assumptions_hold(kind: str, label: str) -> None:
    e = errors(kind)[label]
    se = e.std(axis=0, ddof=1) / np.sqrt(N_SEEDS)
    # + 1e-5: the direct method with the exact model is exact up to float32
    assert (np.abs(e.mean(axis=0)) < 3 * se + 1e-5).all(), e.mean(axis=0) / (se + 1e-12)


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "label"), BIASED, ids=lambda x: x)
def test_biased_where_assumptions_fail(kind: str, label: str) -> None:
    z = z_scores(kind, label)
    assert (np.abs(z) > 5).any(), z


@pytest.mark.slow
def test_clipping_biases_downward() -> None:
    assert (z_scores("pbm", "clipped_ips_tight") < 0).all()


# ------------------------------------------------- exact expectations by enumeration
SMALL_N, SMALL_K = 4, 2
SLATES = np.array(list(itertools.permutations(range(SMALL_N), SMALL_K)))  # [12, 2]


def _small_log(kind: str, seed: int) -> tuple[SlateFeedback, np.ndarray, np.ndarray]:
    """One request per possible slate, labels = their exact means; and mu(slate)."""
    g = np.random.default_rng(seed)
    phi = g.uniform(0.05, 0.9, size=(SMALL_N, SMALL_K))
    r = g.uniform(0.1, 0.9, size=SMALL_N)
    exam = np.array([1.0, 0.7])

    def mean(slate: np.ndarray) -> np.ndarray:
        if kind == "additive":
            return phi[slate, np.arange(SMALL_K)]
        base = exam * r[slate]
        if kind == "cascade":
            return base * np.array([1.0, 1.0 - base[0]])
        return base * np.array([0.1 + r[slate[1]], 1.0])  # lookahead

    s = len(SLATES)
    logging_score = np.tile(g.normal(size=SMALL_N), (s, 1))
    logger = EpsilonGreedyTopK(k=SMALL_K, epsilon=0.5)
    positions = np.full((s, SMALL_N), -1, dtype=np.int64)
    np.put_along_axis(positions, SLATES, np.arange(SMALL_K)[None], axis=1)
    labels = np.zeros((s, SMALL_N))
    np.put_along_axis(labels, SLATES, np.array([mean(x) for x in SLATES]), axis=1)
    traffic = LoggedTraffic(
        request_ids=np.arange(s), user_ids=np.zeros(s, dtype=np.int64),
        item_ids=np.tile(np.arange(SMALL_N), (s, 1)), positions=positions,
        pscores=logger.pscores(logging_score), labels={"click": labels}, examination=exam,
        prefix_pscores=logger.prefix_probabilities(logging_score, positions),
        label_kinds={"click": "continuous"})  # expected values, not draws
    greedy = top_k(logging_score[0], SMALL_K)
    mu = (1 - 0.5) * (greedy == SLATES).all(axis=1) + 0.5 / s
    values = np.array([mean(x).sum() for x in SLATES])
    return SlateFeedback.from_traffic(traffic), mu, values


def _exact(kind: str, estimator: BaseEstimator, target: EpsilonGreedyTopK) -> tuple[float, float]:
    fb, mu, values = _small_log(kind, seed=3)
    scores = np.tile(np.random.default_rng(9).normal(size=SMALL_N), (len(SLATES), 1))[None]
    terms = estimator.policy_terms(fb, target, scores)
    expected = float(mu @ terms.numerator[0, :, 0])
    greedy = top_k(scores[0, 0], SMALL_K)
    pi = (1 - target.epsilon) * (greedy == SLATES).all(axis=1) + target.epsilon / len(SLATES)
    return expected, float(pi @ values)


@pytest.mark.parametrize("target_eps", [0.0, 0.3])
@pytest.mark.parametrize(
    ("kind", "estimator", "unbiased"),
    [
        ("additive", PseudoInverse(), True),
        ("cascade", PseudoInverse(), False),
        ("lookahead", PseudoInverse(), False),
        ("additive", RIPS(), True),
        ("cascade", RIPS(), True),
        ("lookahead", RIPS(), False),
    ],
    ids=str,
)
def test_exact_expectation_over_all_slates(kind, estimator, unbiased, target_eps) -> None:
    expected, value = _exact(kind, estimator, EpsilonGreedyTopK(SMALL_K, target_eps))
    if unbiased:
        assert expected == pytest.approx(value, rel=1e-5)
    else:
        assert abs(expected - value) > 1e-4 * value  # float32 terms: 10x the rtol above


def test_pi_coefficients_invert_the_loggers_second_moment() -> None:
    fb, mu, _ = _small_log("additive", seed=0)
    assert fb.pscores is not None and fb.positions is not None
    z = epsilon_greedy_coefficients(fb.pscores, fb.positions).reshape(len(SLATES), -1)
    ind = np.zeros((len(SLATES), SMALL_N, SMALL_K))
    np.put_along_axis(ind, SLATES[..., None], np.eye(SMALL_K)[None], axis=1)
    ind = ind.reshape(len(SLATES), -1)
    gamma = np.einsum("s,si,sj->ij", mu, ind, ind)
    # E_mu[1_s 1_s^T Gamma^+ 1_t] = Gamma Gamma^+ 1_t = 1_t for every slate t
    np.testing.assert_allclose(gamma @ z.T, ind.T, atol=1e-9)


def test_prefix_probabilities_match_sampling() -> None:
    logger = EpsilonGreedyTopK(k=2, epsilon=0.4)
    f = np.array([[0.1, 0.9, 0.5, 0.3]])
    draws = np.stack([logger.sample(f, seed=i)[0] for i in range(4000)])
    positions = np.array([[-1, 0, 1, -1]])
    p = logger.prefix_probabilities(f, positions)[0]
    assert p[1] == pytest.approx((draws[:, 0] == 1).mean(), abs=0.03)
    assert p[2] == pytest.approx(((draws[:, 0] == 1) & (draws[:, 1] == 2)).mean(), abs=0.03)
    np.testing.assert_array_equal(TopKPolicy(2).prefix_probabilities(f, positions), [[0, 1, 1, 0]])


# ----------------------------------------------------------- limits and invariances
def _feedback(seed: int = 0, reward_model: str = "noisy") -> tuple[SlateFeedback, np.ndarray]:
    world = make_world("pbm")
    q = world.scores if reward_model == "noisy" else world.rewards
    return SlateFeedback.from_traffic(make_log(world, seed), reward_model=q), fused(world)


def _value(est: BaseEstimator, fb: SlateFeedback, f: np.ndarray) -> np.ndarray:
    return point_values(est.policy_terms(fb, TopKPolicy(K), f), IDENTITY)


def test_switch_limits() -> None:
    fb, f = _feedback()
    np.testing.assert_allclose(_value(Switch(np.inf), fb, f), _value(IPS(), fb, f), rtol=1e-6)
    np.testing.assert_allclose(_value(Switch(1e-12), fb, f), _value(DirectMethod(), fb, f),
                               rtol=1e-6)
    np.testing.assert_allclose(_value(SwitchDR(np.inf), fb, f),
                               _value(DoublyRobust(), fb, f), rtol=1e-6)
    np.testing.assert_allclose(_value(SwitchDR(1e-12), fb, f),
                               _value(DirectMethod(), fb, f), rtol=1e-6)
    mid = _value(SwitchDR(3.0), fb, f)
    assert not np.allclose(mid, _value(DoublyRobust(), fb, f))


def test_clipped_ips_with_a_loose_clip_is_ips_and_iips_is_ips() -> None:
    fb, f = _feedback()
    np.testing.assert_allclose(_value(ClippedIPS(1e9), fb, f), _value(IPS(), fb, f))
    assert isinstance(make_estimator("iips"), IPS)


def test_self_normalized_estimators_ignore_a_constant_factor_on_the_weights() -> None:
    fb, f = _feedback()
    halved = dataclasses.replace(fb, logging_exposure=fb.logging_exposure / 2)  # weights x2
    for est in (SNIPS(), SNDR()):
        np.testing.assert_allclose(_value(est, halved, f), _value(est, fb, f), rtol=1e-5)
    np.testing.assert_allclose(_value(IPS(), halved, f), 2 * _value(IPS(), fb, f), rtol=1e-5)


@pytest.mark.parametrize("name", ["rips", "pi", "sndr", "switch_dr", "clipped_ips"])
def test_replay_runs_every_new_estimator(name: str) -> None:
    fb, _ = _feedback()
    world = make_world("pbm")
    replay = Replay(fb, world.scores, TASKS, FUSION, TopKPolicy(K), make_estimator(name),
                    NormalInterval(), chunk_requests=70)
    result = replay.evaluate(WEIGHTS)
    direct = _value(make_estimator(name), fb, fused(world))
    np.testing.assert_allclose(result.value, direct, rtol=1e-4, atol=1e-7)
    assert (result.low <= result.value).all() and (result.value <= result.high).all()


def test_prefix_pscore_column_round_trips() -> None:
    traffic = make_log(make_world("pbm"), 0)
    back = LoggedTraffic.from_columns(traffic.to_columns(), examination=EXAM)
    assert back.prefix_pscores is not None and traffic.prefix_pscores is not None
    np.testing.assert_allclose(back.prefix_pscores, traffic.prefix_pscores)
    part = traffic.take(np.arange(10))
    assert part.prefix_pscores is not None and part.prefix_pscores.shape == (10, N)


# --------------------------------------------------------------------- bad inputs
def _bad_feedback(**changes):
    fb, _ = _feedback()
    return lambda: dataclasses.replace(fb, **changes)


def _fb():
    return _feedback()[0]


def _with_pscore(value: float):
    fb = _fb()
    assert fb.pscores is not None and fb.positions is not None
    ps = fb.pscores.copy()
    r, n = np.argwhere(fb.positions == 0)[0]
    ps[r, n, 0] = value
    return lambda: dataclasses.replace(fb, pscores=ps)


def _with_prefix(value: float):
    fb = _fb()
    assert fb.prefix_pscore is not None
    pp = fb.prefix_pscore.copy()
    pp[np.argwhere(fb.shown)[0][0], np.argwhere(fb.shown)[0][1]] = value
    return lambda: dataclasses.replace(fb, prefix_pscore=pp)


def _estimate(est: BaseEstimator, fb: SlateFeedback | None = None, exposure=None):
    def run():
        feedback = fb if fb is not None else _fb()
        if exposure is not None:
            return est.terms(feedback, exposure)
        return est.policy_terms(feedback, TopKPolicy(K), fused(make_world("pbm")))
    return run


def _negative_rewards():
    fb = _fb()
    return dataclasses.replace(fb, rewards=fb.rewards - 0.5)


def _not_epsilon_greedy():
    fb = _fb()
    assert fb.pscores is not None
    ps = fb.pscores.copy()
    ps[0, :, 0] = np.arange(1, N + 1) / (N * (N + 1) / 2)  # a softmax-like logger
    return dataclasses.replace(fb, pscores=ps)


def _bad_log_prefix():
    traffic = make_log(make_world("pbm"), 0)
    assert traffic.prefix_pscores is not None
    pp = traffic.prefix_pscores.copy()
    pp[traffic.shown] = 1.5
    return dataclasses.replace(traffic, prefix_pscores=pp)


BAD = [
    (lambda: ClippedIPS(clip=0.0), ValueError, "clip must be finite and > 0"),
    (lambda: ClippedIPS(clip=-2.0), ValueError, "clip must be finite and > 0"),
    (lambda: ClippedIPS(clip=np.inf), ValueError, "clip must be finite"),
    (lambda: IPS(clip=0.0), ValueError, "clip must be > 0"),
    (lambda: Switch(tau=0.0), ValueError, "switch tau must be > 0"),
    (lambda: SwitchDR(tau=-1.0), ValueError, "switch_dr tau must be > 0"),
    (lambda: SwitchDR(tau=float("nan")), ValueError, "switch_dr tau must be > 0"),
    (_with_pscore(0.0), ValueError, "pscores of a logged impression must be > 0"),
    (_with_pscore(1.5), ValueError, "pscores must be propensities in \\[0, 1\\]"),
    (_with_prefix(0.0), ValueError, "prefix_pscore must be in \\(0, 1\\]"),
    (_with_prefix(1.2), ValueError, "prefix_pscore must be in \\(0, 1\\]"),
    (_bad_feedback(logging_exposure=np.zeros((R, N), np.float32)), ValueError,
     "logging_exposure must be in"),
    (_bad_feedback(reward_model=np.zeros((R, N, 3), np.float32)), ValueError,
     "reward_model must have shape"),
    (_bad_feedback(rewards=np.zeros((R, N, 3), np.float32)), ValueError,
     "rewards must have shape"),
    (_bad_feedback(positions=np.zeros((R, N + 1), np.int64)), ValueError,
     "positions must have shape"),
    (_bad_feedback(prefix_pscore=np.ones((R, 2))), ValueError, "prefix_pscore must have shape"),
    (_bad_feedback(pscores=np.ones((R, N, K + 1)) / N), ValueError, "pscores must have shape"),
    (lambda: _estimate(ClippedIPS(), _negative_rewards())(), ValueError,
     "rewards must be >= 0 for clipped_ips"),
    (_estimate(IPS(), exposure=np.zeros((2, R, N + 1), np.float32)), ValueError,
     "exposure must have shape"),
    (_estimate(IPS(), exposure=np.full((2, R, N), -1.0, np.float32)), ValueError,
     "exposure must be finite and >= 0"),
    (lambda: _estimate(RIPS(), dataclasses.replace(_fb(), prefix_pscore=None))(), ValueError,
     "rips needs prefix_pscore"),
    (lambda: _estimate(PseudoInverse(), _not_epsilon_greedy())(), ValueError,
     "pscores are not those of an epsilon-greedy"),
    (_estimate(RIPS(), exposure=np.zeros((1, R, N), np.float32)), ValueError,
     "rips needs the target policy's prefix probabilities"),
    (_estimate(PseudoInverse(), exposure=np.zeros((1, R, N), np.float32)), ValueError,
     "pi needs the target policy's slot probabilities"),
    (_bad_log_prefix, LogValidationError, "probability 1.5 of a logged prefix must be in"),
]


@pytest.mark.parametrize(("make", "error", "pattern"), BAD, ids=[b[2][:40] for b in BAD])
def test_bad_inputs_are_refused(make, error, pattern) -> None:
    with pytest.raises(error, match=pattern):
        make()
