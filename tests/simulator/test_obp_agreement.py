"""Our estimators against Open Bandit Pipeline's on the same arrays.

A slate of one slot with examination 1 is a contextual bandit: the logged
candidate is OBP's ``action``, its logging propensity OBP's ``pscore``, the
target's exposure OBP's ``action_dist[:, :, 0]`` and the reward model OBP's
``estimated_rewards_by_reg_model``. IPS, SNIPS, DM, DR, switch-DR and SNDR
must then give OBP's numbers; RIPS is compared with OBP's
``SlateRewardInteractionIPS`` on 3-slot slates given the same prefix
propensities.

OBP is an optional test extra (``pip install -e .[obp]``; ``obp==0.4.1`` is
the newest release that installs on Python 3.11 next to our torch without
pulling another one). Without it the OBP tests skip, and the same values are
checked against formulas written out as plain loops over rows below (OBP
0.4.1 also has no clipped IPS, so clipping is checked by loop only).
"""

from __future__ import annotations

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
    SlateFeedback,
    SwitchDR,
)
from simulator.intervals import point_values
from simulator.policies import EpsilonGreedyTopK

N_ROUNDS, N_ACTIONS, TAU = 500, 5, 2.0


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def bandit(seed: int = 0) -> dict[str, np.ndarray]:
    """Logged bandit feedback in OBP's vocabulary."""
    g = np.random.default_rng(seed)
    mu = _softmax(g.normal(size=(N_ROUNDS, N_ACTIONS)))  # logging policy
    pi = _softmax(2 * g.normal(size=(N_ROUNDS, N_ACTIONS)))  # target policy
    truth = g.uniform(0.1, 0.9, size=(N_ROUNDS, N_ACTIONS))
    action = (g.random((N_ROUNDS, 1)) > np.cumsum(mu, axis=1)).sum(axis=1)
    reward = (g.random(N_ROUNDS) < truth[np.arange(N_ROUNDS), action]).astype(float)
    q = np.clip(truth + g.normal(0, 0.1, truth.shape), 0, 1)
    return {"mu": mu, "pi": pi, "action": action, "reward": reward, "q": q,
            "pscore": mu[np.arange(N_ROUNDS), action]}


def ours(est: BaseEstimator, b: dict[str, np.ndarray]) -> float:
    rows = np.arange(N_ROUNDS)
    shown = np.zeros((N_ROUNDS, N_ACTIONS), dtype=bool)
    shown[rows, b["action"]] = True
    rewards = np.zeros((N_ROUNDS, N_ACTIONS, 1), np.float32)
    rewards[rows, b["action"], 0] = b["reward"]
    fb = SlateFeedback(
        tasks=("r",), rewards=rewards, shown=shown,
        slot_examination=shown.astype(np.float32),
        logging_exposure=b["mu"].astype(np.float32), examination=np.array([1.0]),
        reward_model=b["q"][..., None].astype(np.float32),
        positions=np.where(shown, 0, -1), pscores=b["mu"][..., None],
    )
    terms = est.terms(fb, b["pi"][None].astype(np.float32))
    return float(point_values(terms, np.eye(1))[0, 0])


def by_loop(name: str, b: dict[str, np.ndarray]) -> float:
    """The textbook formulas, one row at a time."""
    w, res, dm = [], [], []
    for i in range(N_ROUNDS):
        a = b["action"][i]
        w.append(b["pi"][i, a] / b["pscore"][i])
        res.append(b["reward"][i] - b["q"][i, a])
        dm.append(sum(b["pi"][i, j] * b["q"][i, j] for j in range(N_ACTIONS)))
    w_, res_, dm_, r_ = map(np.array, (w, res, dm, b["reward"]))
    return {
        "ips": np.mean(w_ * r_),
        "clipped_ips": np.mean(np.minimum(w_, TAU) * r_),
        "snips": np.sum(w_ * r_) / np.sum(w_),
        "dm": np.mean(dm_),
        "dr": np.mean(dm_ + w_ * res_),
        "switch_dr": np.mean(dm_ + (w_ <= TAU) * w_ * res_),
        "sndr": np.mean(dm_) + np.sum(w_ * res_) / np.sum(w_),
    }[name]


OURS = {
    "ips": IPS(), "clipped_ips": ClippedIPS(clip=TAU), "snips": SNIPS(), "dm": DirectMethod(),
    "dr": DoublyRobust(), "switch_dr": SwitchDR(tau=TAU), "sndr": SNDR(),
}


@pytest.mark.parametrize("name", list(OURS))
def test_bandit_case_matches_the_formulas(name: str) -> None:
    b = bandit()
    assert ours(OURS[name], b) == pytest.approx(by_loop(name, b), rel=1e-5)


@pytest.mark.parametrize("name", ["ips", "snips", "dm", "dr", "switch_dr", "sndr"])
def test_bandit_case_matches_obp(name: str) -> None:
    ope = pytest.importorskip("obp.ope")
    obp_est = {
        "ips": ope.InverseProbabilityWeighting(),
        "snips": ope.SelfNormalizedInverseProbabilityWeighting(),
        "dm": ope.DirectMethod(),
        "dr": ope.DoublyRobust(),
        "switch_dr": ope.SwitchDoublyRobust(tau=TAU),
        "sndr": ope.SelfNormalizedDoublyRobust(),
    }[name]
    b = bandit(1)
    value = obp_est.estimate_policy_value(
        reward=b["reward"], action=b["action"], pscore=b["pscore"],
        action_dist=b["pi"][..., None], estimated_rewards_by_reg_model=b["q"][..., None],
        position=np.zeros(N_ROUNDS, dtype=int),
    )
    assert ours(OURS[name], b) == pytest.approx(float(value), rel=1e-5)


def test_rips_matches_obp_slate_reward_interaction_ips() -> None:
    ope = pytest.importorskip("obp.ope")
    g = np.random.default_rng(2)
    r, n, k = 300, 6, 3
    logger, target = EpsilonGreedyTopK(k, 0.5), EpsilonGreedyTopK(k, 0.3)
    log_score, target_score = g.normal(size=(r, n)), g.normal(size=(r, n))
    slates = logger.sample(log_score, seed=0)
    positions = np.full((r, n), -1)
    np.put_along_axis(positions, slates, np.arange(k)[None], axis=1)
    shown = positions >= 0
    rewards = np.where(shown, g.random((r, n)) < 0.3, 0.0)[..., None].astype(np.float32)
    exam = np.ones(k)
    pscores = logger.pscores(log_score)
    fb = SlateFeedback(
        tasks=("r",), rewards=rewards, shown=shown, slot_examination=shown.astype(np.float32),
        logging_exposure=(pscores @ exam).astype(np.float32), examination=exam,
        positions=positions, pscores=pscores,
        prefix_pscore=logger.prefix_probabilities(log_score, positions),
    )
    target_prefix = target.prefix_probabilities(target_score[None], positions)
    value = float(point_values(RIPS().prefix_terms(fb, target_prefix), np.eye(1))[0, 0])
    rr, cc = np.nonzero(shown)
    obp_value = ope.SlateRewardInteractionIPS(len_list=k).estimate_policy_value(
        slate_id=rr, reward=rewards[rr, cc, 0].astype(float), position=positions[rr, cc],
        pscore_cascade=fb.prefix_pscore[rr, cc],
        evaluation_policy_pscore_cascade=target_prefix[0, rr, cc],
    )
    assert value == pytest.approx(float(obp_value), rel=1e-5)
