"""Per-request weights: a constant policy is today's replay; a varying one is each
request ranked by its own row."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.estimators import IPS, SNIPS, DoublyRobust
from simulator.replay import Replay
from tests.worldkit import OBJECTIVE_WEIGHTS, make_log

W = np.array([[1.0, 0.8, 2.0], [1.0, 3.0, 0.2]])


def _replay(estimator: object, chunk: int = 5000) -> Replay:
    log = make_log(4, 700)
    rep = log.replay(estimator)  # type: ignore[arg-type]
    return Replay(rep.feedback, rep.scores, rep.score_tasks, rep.fusion, rep.policy,
                  rep.estimator, rep.interval, chunk_requests=chunk)


@pytest.mark.parametrize("estimator", [SNIPS(), IPS(), DoublyRobust()], ids=lambda e: e.name)
def test_constant_weights_give_the_replays_estimates(estimator: object) -> None:
    rep = _replay(estimator, chunk=300)  # several chunks
    r = rep.feedback.n_requests
    const = np.repeat(W[:, None, :], r, axis=1)  # [2, R, 3]
    got = rep.evaluate_per_request(const, OBJECTIVE_WEIGHTS)
    want = rep.evaluate(W, OBJECTIVE_WEIGHTS)
    np.testing.assert_allclose(got.value, want.value, rtol=1e-6)
    np.testing.assert_allclose(got.low, want.low, rtol=1e-6)
    np.testing.assert_allclose(got.high, want.high, rtol=1e-6)


def test_each_request_is_ranked_by_its_own_row() -> None:
    rep = _replay(SNIPS())
    r = rep.feedback.n_requests
    mine = np.random.default_rng(0).integers(0, 2, r)  # which row each request gets
    terms = rep.request_terms(W[mine])  # [R, 3]: one policy
    each = rep.terms(W)
    want_num = np.where(mine[:, None] == 0, each.numerator[0], each.numerator[1])
    np.testing.assert_allclose(terms.numerator[0], want_num, rtol=1e-6)
    assert terms.denominator is not None and each.denominator is not None
    np.testing.assert_allclose(terms.denominator[0],
                               np.where(mine == 0, each.denominator[0], each.denominator[1]),
                               rtol=1e-6)


def test_bad_shapes_and_weights_are_refused() -> None:
    rep = _replay(SNIPS())
    r = rep.feedback.n_requests
    with pytest.raises(ValueError, match=r"\[P, R, S\] = \[P, 700, 3\]"):
        rep.request_terms(np.ones((1, r - 1, 3)))
    bad = np.ones((r, 3))
    bad[5, 1] = -1.0
    with pytest.raises(ValueError, match="conversion"):
        rep.request_terms(bad)
