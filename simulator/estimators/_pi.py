"""The pseudo-inverse estimator for slates with additive rewards."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from simulator.estimators._base import (
    SLOT_PSCORES,
    BaseEstimator,
    RequestTerms,
    SlateFeedback,
    label_moments,
    weight_moments,
)

if TYPE_CHECKING:
    from simulator.policies import BasePolicy

__all__ = ["PseudoInverse", "epsilon_greedy_coefficients"]


def _gram_pinv(n: int, k: int, epsilon: float) -> np.ndarray:
    """``[N*K, N*K]`` pseudo-inverse of ``Gamma = E_mu[1_s 1_s^T]`` in canonical order.

    Canonical order: the greedy candidate of slot ``j`` is candidate ``j``, so
    ``Gamma = (1 - eps) g g^T + eps U`` with ``g`` the greedy slate's indicator
    and ``U`` the second moment of a uniform ordered ``k``-subset:
    ``P(n in j, m in l)`` is ``1/N`` on the diagonal, 0 for the same candidate
    in two slots or two candidates in one slot, ``1/(N (N-1))`` otherwise.
    Index ``(n, j)`` is ``n * K + j``.
    """
    same_n = np.equal.outer(np.repeat(np.arange(n), k), np.repeat(np.arange(n), k))
    same_j = np.equal.outer(np.tile(np.arange(k), n), np.tile(np.arange(k), n))
    off = 1.0 / (n * (n - 1)) if n > 1 else 0.0
    u = np.where(same_n & same_j, 1.0 / n, np.where(same_n | same_j, 0.0, off))
    g = np.zeros(n * k)
    g[np.arange(k) * k + np.arange(k)] = 1.0
    gamma = (1.0 - epsilon) * np.outer(g, g) + epsilon * u
    return np.linalg.pinv(gamma, hermitian=True)


def epsilon_greedy_coefficients(pscores: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """``Gamma_r^+ 1_{s_r}`` of an epsilon-greedy top-``K`` logger, ``[R, N, K]``.

    The logger's pairwise slot probabilities follow from its marginals
    ``pscores[r, n, k] = (1 - eps) 1{n greedy in k} + eps / N``, from which
    ``eps`` and the greedy slate are read back exactly.

    Args:
        pscores: ``[R, N, K]`` logging marginals.
        positions: ``[R, N]`` logged slots, ``-1`` where not shown.

    Raises:
        ValueError: if ``pscores`` are not those of an epsilon-greedy top-K logger.
    """
    r, n, k = pscores.shape
    # off the greedy entries every marginal is eps / N (there are some when N >= 2)
    eps = n * pscores.min(axis=(1, 2)) if n >= 2 else np.ones(r)  # [R]
    greedy = pscores.argmax(axis=1)  # [R, K]
    explore_all = eps > 1 - 1e-9
    greedy = np.where(explore_all[:, None], np.arange(k)[None], greedy)
    onehot = np.zeros((r, n, k))
    np.put_along_axis(onehot, greedy[:, None, :], 1.0, axis=1)
    expected = (1.0 - eps)[:, None, None] * onehot + (eps / n)[:, None, None]
    if not np.allclose(pscores, expected, atol=1e-6) or (
            ~explore_all & (np.sort(greedy, axis=1)[:, 1:] == np.sort(greedy, axis=1)[:, :-1])
            .any(axis=1)).any():
        raise ValueError("pscores are not those of an epsilon-greedy top-K logger "
                         "((1 - eps) * 1{greedy} + eps / N); the pi estimator needs the "
                         "logger's pairwise slot probabilities, which only that logger "
                         "gives from its marginals")
    # canonical candidate order: greedy of slot j first (as j), then the rest
    key = np.full((r, n), k, dtype=np.int64) + np.arange(n)[None]
    np.put_along_axis(key, greedy, np.arange(k)[None].repeat(r, 0), axis=1)
    canon = np.argsort(np.argsort(key, axis=1), axis=1)  # [R, N] canonical index of n
    logged = np.argsort(np.where(positions >= 0, positions, k), axis=1, kind="stable")[:, :k]
    cols = np.take_along_axis(canon, logged, axis=1) * k + np.arange(k)[None]  # [R, K]
    out = np.empty((r, n * k))
    levels, which = np.unique(np.round(eps, 9), return_inverse=True)
    for i, level in enumerate(levels):
        rows = np.flatnonzero(which == i)
        pinv = _gram_pinv(n, k, float(level))
        out[rows] = pinv[:, cols[rows]].sum(axis=2).T  # [rows, N*K]
    z_canon = out.reshape(r, n, k)
    return np.take_along_axis(z_canon, canon[..., None], axis=1)


def _ragged_theta(feedback: SlateFeedback, target_slots: np.ndarray) -> np.ndarray:
    """``[P, R]`` ``theta_r`` of ragged requests, on each request's candidates and shown slots.

    A request of ``N_r`` candidates showing ``m_r`` slots is an epsilon-greedy top-``m_r``
    slate over its ``N_r`` (the logger's marginals restricted to the shown slots keep
    that form), so requests are grouped by ``(N_r, m_r)`` and each group is solved as
    a dense log of its own.
    """
    assert feedback.pscores is not None and feedback.positions is not None
    r, n_max, k = feedback.pscores.shape
    valid = np.ones((r, n_max), bool) if feedback.valid is None else feedback.valid
    seen = np.ones((r, k), bool) if feedback.slot_shown is None else feedback.slot_shown
    n_r, m_r = valid.sum(axis=1), seen.sum(axis=1)
    slot_order = np.argsort(~seen, axis=1, kind="stable")  # [R, K] shown slots first
    rank = np.cumsum(seen, axis=1) - 1  # [R, K] index of a shown slot among the shown
    theta = np.zeros((target_slots.shape[0], r))
    for n, m in {(int(a), int(b)) for a, b in zip(n_r, m_r, strict=True) if b > 0}:
        rows = np.flatnonzero((n_r == n) & (m_r == m))
        so = slot_order[rows, :m]  # [g, m]
        ps = np.take_along_axis(feedback.pscores[rows, :n, :], so[:, None, :], axis=2)
        pos = feedback.positions[rows, :n]
        pos_c = np.where(pos >= 0, np.take_along_axis(rank[rows], np.maximum(pos, 0), axis=1),
                         -1)
        z = epsilon_greedy_coefficients(ps, pos_c)  # [g, n, m]
        tg = np.take_along_axis(target_slots[:, rows, :n, :], so[None, :, None, :], axis=3)
        theta[:, rows] = np.einsum("prnk,rnk->pr", tg, z)
    return theta


@dataclass(frozen=True)
class PseudoInverse(BaseEstimator):
    """The pseudo-inverse estimator (Swaminathan et al. 2017), slate-level rewards.

    Treat the slate as an ``N x K`` indicator ``1_s`` and its label sum
    ``Y_r = sum_n y(r, n)`` (``[R, T]``) as the reward. With ``q_pi``
    ``[P, R, N, K]`` the target's slot marginals ``P(n in slot k)`` and
    ``Gamma_r = E_mu[1_s 1_s^T]`` the logger's ``[N K, N K]`` pairwise slot
    probabilities,

    ``V_PI = 1/R sum_r Y_r * theta_r``,  ``theta_r = q_pi(r)^T Gamma_r^+ 1_{s_r}``.

    Unbiased when (a) the expected label sum is *additive* over (slot, item)
    pairs, ``E[Y | s] = sum_k phi(k, s_k)`` with any ``phi`` -- the
    position-based model is one case, item-position effects that the PBM
    cannot express are others, a cascade is not -- and (b) ``q_pi`` lies in the
    span of the logger's slates (every target when ``epsilon > 0``). It does
    not need the examination curve; it uses only the per-request sum of labels.

    ``Gamma_r`` in general needs the logger's pairwise structure. This
    implementation supports the epsilon-greedy top-K logger
    (:class:`~simulator.policies.EpsilonGreedyTopK`), for which it is exact and
    computed from the log's ``pscores`` (``[R, N, K]``): one ``N K x N K``
    pseudo-inverse per distinct ``epsilon``, shared by all requests up to a
    permutation of candidates. Other loggers are refused. ``theta`` can be
    negative; the ESS reported uses it.

    Example:
        >>> est = PseudoInverse()
    """

    name: ClassVar[str] = "pi"
    needs_columns: ClassVar[tuple[str, ...]] = (SLOT_PSCORES,)

    def terms(self, feedback: SlateFeedback, exposure: np.ndarray) -> RequestTerms:
        raise ValueError("pi needs the target policy's slot probabilities, not only its "
                         "exposure: call policy_terms(feedback, policy, fused) or "
                         "slot_terms(feedback, target_slots)")

    def policy_terms(
        self, feedback: SlateFeedback, policy: BasePolicy, fused: np.ndarray
    ) -> RequestTerms:
        return self.slot_terms(feedback, policy.slot_probabilities(fused, feedback.slate_size))

    def slot_terms(self, feedback: SlateFeedback, target_slots: np.ndarray) -> RequestTerms:
        """Terms from the target's slot marginals ``[P, R, N, K]``."""
        if feedback.pscores is None or feedback.positions is None:
            raise ValueError("pi needs the log's pscores and positions; the feedback has none")
        if target_slots.ndim != 4 or target_slots.shape[1:] != feedback.pscores.shape:
            raise ValueError(f"target_slots must have shape [P, R, N, K] with [R, N, K] = "
                             f"{feedback.pscores.shape}, got {target_slots.shape}")
        if feedback.valid is None and feedback.slot_shown is None:
            z = epsilon_greedy_coefficients(feedback.pscores, feedback.positions)  # [R, N, K]
            theta = np.einsum("prnk,rnk->pr", target_slots, z)  # [P, R]
        else:
            theta = _ragged_theta(feedback, target_slots)
        total = feedback.rewards.sum(axis=1, dtype=np.float64)  # [R, T]
        num = (theta[..., None] * total[None]).astype(np.float32)
        return RequestTerms(num, None, None, *weight_moments(theta),
                            **label_moments(theta, total, feedback.n_requests))
