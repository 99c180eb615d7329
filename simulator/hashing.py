"""Counter-based randomness keyed by request id: the same draws however a log is cut.

A request's share of a split and its bootstrap resample weights are functions of
``(seed, request id, resample)`` alone (splitmix64, Steele, Lea & Flood 2014), so
they do not change with the number of files, chunks or workers that read the log,
nor with the order requests arrive in. All numpy, vectorised over requests.

Example:
    >>> ids = np.arange(5, dtype=np.int64)
    >>> u = uniform(ids, seed=0, stream=1)
    >>> bool(((0 <= u) & (u < 1)).all()), np.array_equal(u[2:], uniform(ids[2:], 0, 1))
    (True, True)
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["SPLIT_STREAM", "BOOTSTRAP_STREAM", "mix64", "poisson_weights", "uniform"]

SPLIT_STREAM = 1
"""Stream of the search / held-out split of requests."""
BOOTSTRAP_STREAM = 2
"""Stream of the bootstrap's resample weights."""

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser of ``x`` (uint64, any shape): a bijection that scrambles
    every input bit into every output bit."""
    z = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def _base(ids: np.ndarray, seed: int, stream: int) -> np.ndarray:
    """``[R]`` uint64 per-request keys of one seed and stream."""
    salt = mix64(np.array([(seed * 0x10001 + stream) & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))
    with np.errstate(over="ignore"):
        return mix64(np.asarray(ids).astype(np.uint64) * _GOLDEN + salt)


def uniform(ids: np.ndarray, seed: int, stream: int) -> np.ndarray:
    """``[R]`` float64 uniforms in ``[0, 1)``, one per request id."""
    return (_base(ids, seed, stream) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _poisson_thresholds() -> np.ndarray:
    """uint32 thresholds ``floor(2^32 * P(X <= k))`` of Poisson(1), k = 0, 1, ... while below
    2^32 (past k = 12 the tail is under 2^-32, below the uniforms' resolution)."""
    out: list[int] = []
    cdf, k = 0.0, 0
    while True:
        cdf += math.exp(-1.0) / math.factorial(k)
        t = math.floor(cdf * 2.0**32)
        if t >= 2**32 - 1:
            return np.array(out, dtype=np.uint32)
        out.append(t)
        k += 1


_THRESHOLDS = _poisson_thresholds()


def poisson_weights(ids: np.ndarray, seed: int, n_resamples: int,
                    stream: int = BOOTSTRAP_STREAM) -> np.ndarray:
    """``[B, R]`` uint8 Poisson(1) bootstrap weights of requests ``ids [R]``.

    Weight ``[b, r]`` depends on ``(seed, ids[r], b)`` alone. One 64-bit hash gives two
    32-bit uniforms; each becomes a Poisson(1) count by the inverse CDF, counted as how
    many thresholds it reaches (no ``[B, R]`` int64 array is made).

    Example:
        >>> w = poisson_weights(np.arange(20000), seed=3, n_resamples=50)
        >>> w.dtype, w.shape, round(float(w.mean()), 1), round(float(w.var()), 1)
        (dtype('uint8'), (50, 20000), 1.0, 1.0)
    """
    base = _base(ids, seed, stream)  # [R]
    pairs = (n_resamples + 1) // 2
    with np.errstate(over="ignore"):
        counter = (np.arange(1, pairs + 1, dtype=np.uint64) * _GOLDEN)[:, None]
        h = mix64(base[None, :] ^ counter)  # [B/2, R]
    u = np.empty((2 * pairs, len(base)), dtype=np.uint32)
    u[0::2] = (h >> np.uint64(32)).astype(np.uint32)
    u[1::2] = (h & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    u = u[:n_resamples]
    w = np.zeros(u.shape, dtype=np.uint8)
    for t in _THRESHOLDS:
        w += u >= t
    return w
