"""Counter-based draws keyed by request id: the same whatever the order or the cut."""

from __future__ import annotations

import numpy as np

from simulator.estimators import RequestTerms
from simulator.hashing import poisson_weights, uniform
from simulator.intervals import BootstrapInterval, NormalInterval, StudentizedBootstrapInterval
from tuner.evaluation.search_data import split_parts


def test_poisson_weights_are_poisson_1_and_keyed_by_id_alone() -> None:
    ids = np.arange(100_000, 160_000, dtype=np.int64)
    w = poisson_weights(ids, seed=4, n_resamples=64)
    assert w.dtype == np.uint8
    counts = np.bincount(w.ravel(), minlength=6)[:6] / w.size
    expected = np.exp(-1.0) / np.array([1, 1, 2, 6, 24, 120])
    np.testing.assert_allclose(counts, expected, atol=0.002)
    perm = np.random.default_rng(0).permutation(len(ids))
    np.testing.assert_array_equal(poisson_weights(ids[perm], 4, 64), w[:, perm])
    np.testing.assert_array_equal(poisson_weights(ids[:10], 4, 64), w[:, :10])
    assert not np.array_equal(poisson_weights(ids, 5, 64), w)  # another seed
    assert (poisson_weights(ids[:7], 4, 51) == w[:51, :7]).all()  # odd B: a prefix


def test_split_parts_do_not_depend_on_order_or_cut() -> None:
    ids = np.random.default_rng(1).choice(10**9, size=20_000, replace=False)
    splits = {"search": 0.6, "holdout": 0.3}
    parts = split_parts(ids, splits, seed=2)
    assert set(np.unique(parts)) == {-1, 0, 1}
    np.testing.assert_allclose(np.bincount(parts + 1) / len(ids), [0.1, 0.6, 0.3], atol=0.015)
    np.testing.assert_array_equal(split_parts(ids[::-1], splits, 2), parts[::-1])
    np.testing.assert_array_equal(split_parts(ids[5:9], splits, 2), parts[5:9])
    assert not np.array_equal(split_parts(ids, splits, 3), parts)
    assert np.corrcoef(uniform(ids, 2, 1), uniform(ids, 2, 2))[0, 1] < 0.05


def test_intervals_follow_the_requests_not_their_rows() -> None:
    # the same requests in another order, keyed by their ids: the same interval
    rng = np.random.default_rng(3)
    p, r = 4, 3000
    w = rng.lognormal(0.0, 0.7, (p, r)).astype(np.float32)
    y = (rng.random((p, r, 2)) < 0.2).astype(np.float32)
    ids = rng.choice(10**6, size=r, replace=False)
    perm = rng.permutation(r)
    combine = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 3.0]])

    def terms(order: np.ndarray) -> RequestTerms:
        return RequestTerms(w[:, order, None] * y[:, order], w[:, order], np.ones(p),
                            np.ones(p), np.ones(p))

    for interval in (BootstrapInterval(60, seed=1), StudentizedBootstrapInterval(60, seed=1),
                     NormalInterval()):
        a = interval.bounds(terms(np.arange(r)), combine, keys=ids)
        b = interval.bounds(terms(perm), combine, keys=ids[perm])
        halves = interval.sums(terms(perm[:1000]),
                               combine, ids[perm[:1000]]) + interval.sums(
            terms(perm[1000:]), combine, ids[perm[1000:]])
        c = interval.bounds_from(halves)
        for x, z in ((a, b), (a, c)):
            np.testing.assert_allclose(x[0], z[0], rtol=1e-9)
            np.testing.assert_allclose(x[1], z[1], rtol=1e-9)
