"""A semi-synthetic world fitted on the real KuaiRand-Pure logs, with known ground truth.

The ground-truth response model it draws labels from, fitted on the real
train days, is in :mod:`simulator.worlds._kuairand_fit` (its docstring says how).

Requests, candidates, logging
-----------------------------
A request is a real (user, date) feed visit of the 14 logged days, drawn with
probability proportional to its number of real impressions (users are sampled
by their activity); its context ``tab`` is the page of most of its real
impressions. Its ``N`` candidates are the videos the user really saw that day
(a random ``N`` of them when more) filled up to ``N`` with distinct videos
drawn by popularity (proportional to their real impression count), then
shuffled. The production model predicts each task's probability with Gaussian
noise on the true logit (std ``production_noise``) and fuses them as
``sum_k w_k log p_k`` (``logging_weights``; ``long_view`` given click); an
:class:`~simulator.policies.EpsilonGreedyTopK` logger shows its top ``K`` with
probability ``1 - epsilon``, else a uniformly random ordered ``K``-subset, and
logs the exact slot propensities and slate-prefix propensities.

Examination (an assumption)
---------------------------
KuaiRand has no display positions, so the position bias cannot be fitted. The
world uses ``examination[k] = 1 / (1 + k) ** eta`` with ``eta = 0.7`` by
default: the power-law form of Joachims, Swaminathan & Schnabel (WSDM 2017,
"Unbiased Learning-to-Rank with Biased Feedback"), whose simulations vary
``eta`` around 1; 0.7 is a milder decay, as in a feed that is scrolled through.
It is an assumption of the simulation, not a property of the data.
Labels: ``click = e Bern(r_c)``, ``long_view = click Bern(r_lv)``,
``like = e Bern(r_like)``, ``profile_enter = e Bern(r_pe)``, with
``e ~ Bern(examination[slot])``, independent across tasks given the model.

User history rates (an assumption)
----------------------------------
Each log carries, per request, the user's rate of every task over a history of
``history_length`` impressions (default 50: an assumption, a production system's
longer history): ``user_<task>_rate = Binomial(L, p_u,t) / L``, with
``p_u,t`` the user's true probability of the task (``long_view`` unconditional:
click times long view given click) averaged over the videos the user really saw,
each on its own page, drawn once per world seed from a stream of its own (so the
traffic's draws are unchanged). The real logs hold about 9 impressions a user over
their 14 days, too few for such a feature, hence the simulated history: it
is the kind of user-level feature ("the user's like rate last month") production
rankers and personalised fusion read, and it is what lets a segment or a learned
weight model see users whose best weights differ.

Ragged requests (``candidates="10:40"``, ``shown_slots="2:5"``): each request
draws its number of candidates ``N_r`` uniformly from the range (the visit's
real videos first, then popular ones, as above, up to ``N_r``) and its user
sees ``min(K, N_r, d_r)`` slots, ``d_r`` uniform in ``shown_slots``; the
same logger over the request's own candidates. Policies are valued on the
slots each request shows (:meth:`BaseWorld.policy_value`); ``generate_chunk``
draws a log chunk by chunk (:mod:`simulator.worlds._base`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from simulator.logs import LoggedTraffic
from simulator.policies import EpsilonGreedyTopK
from simulator.worlds._base import BaseWorld, RaggedShape, parse_range
from simulator.worlds._kuairand_fit import (
    KUAIRAND_TASKS,
    KuaiRandFit,
    _sigmoid,
    load_response_model,
)

__all__ = ["KuaiRandConfig", "KuaiRandWorld"]


@dataclass(frozen=True)
class KuaiRandConfig:
    """Settings of the KuaiRand-fitted world; validated on construction.

    Args:
        n_requests: logged requests ``R``.
        n_candidates: candidates per request ``N``.
        slate_size: slots ``K``.
        epsilon: the logger's exploration probability, in ``(0, 1]``.
        logging_weights: production fusion weights of (click, long_view | click,
            like, profile_enter): ``score = sum_k w_k log p_k``.
        production_noise: std of the noise on the production model's logits.
        examination_eta: ``examination[k] = 1 / (1 + k) ** eta`` (an assumption).
        seed: seed of the traffic.
        candidates: ragged requests: ``"low:high"`` (or ``(low, high)``), each request's
            number of candidates uniform in that range; ``n_candidates`` is then unused.
        shown_slots: ``"low:high"``: the number of slots each request's user sees
            (a request shows ``min(K, N_r, that)``); None: all it can fill.
        taste_heterogeneity: ``h >= 0``, how much users' best fusion weights differ (not
            fitted: an assumption to test personalisation against): with ``z`` the user's
            standardized activity-degree code (the ``user_active_degree`` log feature),
            the like logit gains ``h * z`` and the long_view one loses it. 0 (the
            default) leaves the fitted world unchanged.
        history_length: ``L >= 1``, the impressions behind the ``user_<task>_rate``
            log features (see the module docstring).

    Example:
        >>> KuaiRandConfig(n_requests=1000).slate_size
        5
    """

    n_requests: int = 20_000
    n_candidates: int = 20
    slate_size: int = 5
    epsilon: float = 0.2
    logging_weights: tuple[float, ...] = (1.0, 1.0, 0.5, 0.5)
    production_noise: float = 0.5
    examination_eta: float = 0.7
    seed: int = 0
    candidates: tuple[int, int] | str | None = None
    shown_slots: tuple[int, int] | str | None = None
    taste_heterogeneity: float = 0.0
    history_length: int = 50

    def __post_init__(self) -> None:
        def fail(name: str, valid: str) -> ValueError:
            return ValueError(f"KuaiRandConfig.{name} must be {valid}, "
                              f"got {getattr(self, name)!r}")

        for name in ("candidates", "shown_slots"):
            object.__setattr__(self, name, parse_range(getattr(self, name),
                                                       f"KuaiRandConfig.{name}"))
        if self.candidates is not None:
            object.__setattr__(self, "n_candidates", int(self.candidates[1]))

        for name in ("n_requests", "n_candidates", "seed", "history_length"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or isinstance(value, bool) or \
                    value < (0 if name == "seed" else 1):
                raise fail(name, f"an integer >= {0 if name == 'seed' else 1}")
        most = self.n_candidates if self.candidates is None else math.inf  # ragged: any K
        if not isinstance(self.slate_size, int) or not 1 <= self.slate_size <= most:
            raise fail("slate_size", f"an integer in [1, n_candidates={self.n_candidates}]")
        if not 0.0 < self.epsilon <= 1.0:
            raise fail("epsilon", "a number in (0, 1]")
        w = self.logging_weights
        if not isinstance(w, tuple) or len(w) != len(KUAIRAND_TASKS) or \
                not all(math.isfinite(x) for x in w):
            raise fail("logging_weights", f"a tuple of {len(KUAIRAND_TASKS)} finite numbers, "
                       f"one per task {KUAIRAND_TASKS}")
        for name in ("production_noise", "examination_eta", "taste_heterogeneity"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise fail(name, "a finite number >= 0")


class KuaiRandWorld(BaseWorld):
    """Logged traffic of real KuaiRand users and videos, labels from the fitted model.

    Args:
        config: the world's settings.
        fit: the fitted response model; default :func:`load_response_model` (cached).
        path: the data folder, when ``fit`` is not given.

    Example (needs the KuaiRand-Pure data, or a cached fit of it):
        >>> world = KuaiRandWorld(KuaiRandConfig(n_requests=200))  # doctest: +SKIP
        >>> traffic = world.generate()  # doctest: +SKIP
        >>> exposure = world.logging_exposure(traffic)[None]  # doctest: +SKIP
        >>> world.true_value(traffic, exposure).shape  # doctest: +SKIP
        (1, 4)
    """

    def __init__(self, config: KuaiRandConfig = KuaiRandConfig(), fit: KuaiRandFit | None = None,
                 path: str | os.PathLike[str] | None = None) -> None:
        self.config = config
        self.fit = fit if fit is not None else load_response_model(path)
        k = np.arange(config.slate_size, dtype=np.float64)
        self._examination = 1.0 / (1.0 + k) ** config.examination_eta
        self._policy = EpsilonGreedyTopK(config.slate_size, config.epsilon)
        self._history: np.ndarray | None = None
        self._true_rates: np.ndarray | None = None

    @property
    def tasks(self) -> tuple[str, ...]:
        return KUAIRAND_TASKS

    @property
    def examination(self) -> np.ndarray:
        return self._examination.copy()

    @property
    def logging_policy(self) -> EpsilonGreedyTopK:
        return self._policy

    def generate(self) -> LoggedTraffic:
        """Draw the seeded logged traffic (see the module docstring).

        Returns:
            ``R`` requests of ``N`` candidates (ragged when the config says so), slate
            ``K``, labels of ``tasks``, ``prefix_pscores``, and features ``tab``,
            ``user_active_degree``, ``user_<task>_rate`` (:meth:`user_history_rates`),
            ``video_log_duration``, ``video_log_popularity`` and ``real_impression``
            (1 where the user really saw the video that day).
        """
        rng = np.random.default_rng([self.config.seed, 20220425])
        return self._draw(rng, self.config.n_requests, 0)

    def generate_chunk(self, n_requests: int, start_request_id: int = 0,
                       seed: int = 0) -> LoggedTraffic:
        """Requests ``start_request_id ..`` ``+ n_requests - 1``, seeded by ``(config.seed,
        seed, start_request_id)`` (see :meth:`BaseWorld.generate_chunk`)."""
        for name, value, low in [("n_requests", n_requests, 1),
                                 ("start_request_id", start_request_id, 0), ("seed", seed, 0)]:
            if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < low:
                raise ValueError(f"generate_chunk {name} must be an integer >= {low}, "
                                 f"got {value!r}")
        rng = np.random.default_rng([self.config.seed, 20220425, seed, start_request_id, 1])
        return self._draw(rng, n_requests, start_request_id)

    def _draw(self, rng: np.random.Generator, r: int, start: int) -> LoggedTraffic:
        """``r`` requests numbered from ``start``, drawn from ``rng``."""
        cfg, fit = self.config, self.fit
        n, k = cfg.n_candidates, cfg.slate_size
        shape = RaggedShape(cfg.candidates, cfg.shown_slots)  # type: ignore[arg-type]
        counts, depth = shape.draw(rng, r, n, k)
        sizes = np.diff(fit.group_offsets)
        groups = rng.choice(len(sizes), size=r, p=sizes / sizes.sum())  # [R]
        users, tabs = fit.group_user[groups], fit.group_tab[groups]
        items, real = _candidates(rng, fit, groups, n)  # [R, N]
        valid = None
        if shape.candidates is not None:  # each request's first N_r, real videos first
            valid = np.arange(n)[None, :] < counts[:, None]
            order = np.argsort(~real, axis=1, kind="stable")
            items = np.take_along_axis(items, order, axis=1)
            real = np.take_along_axis(real, order, axis=1)
            shuffle = np.argsort(np.where(valid, rng.random((r, n)), 2.0), axis=1)
            items = np.take_along_axis(items, shuffle, axis=1)
            real = np.take_along_axis(real, shuffle, axis=1) & valid
        tab_rn = np.broadcast_to(tabs[:, None], (r, n))
        logits = self._logits(users[:, None], items, tab_rn)  # [R, N, T]

        noisy = logits + cfg.production_noise * rng.standard_normal(logits.shape)
        score = -np.logaddexp(0.0, -noisy) @ np.asarray(cfg.logging_weights)  # [R, N]
        if valid is not None:
            score = np.where(valid, score, -np.inf)
        slates = self._policy.sample(score, seed=int(rng.integers(2**63)))  # [R, K]
        if shape.ragged:
            slates = np.where(np.arange(slates.shape[1])[None, :] < depth[:, None], slates, -1)
        positions = np.full((r, n), -1, dtype=np.int64)
        rr, jj = np.nonzero(slates >= 0)
        positions[rr, slates[rr, jj]] = jj
        probs = np.take_along_axis(_sigmoid(logits), np.maximum(slates, 0)[:, :, None], axis=1)
        slot_labels = _draw_labels(rng, probs, self._examination[: slates.shape[1]])
        labels = {}
        for t, task in enumerate(KUAIRAND_TASKS):
            lab = np.zeros((r, n))
            lab[rr, slates[rr, jj]] = slot_labels[rr, jj, t]
            labels[task] = lab

        def per_candidate(values: np.ndarray) -> np.ndarray:
            return values if valid is None else np.where(valid, values, 0)

        history = self.user_history_rates()[users]  # [R, T]
        rates = {f"user_{task}_rate": np.broadcast_to(history[:, t, None], (r, n)).copy()
                 for t, task in enumerate(KUAIRAND_TASKS)}

        return LoggedTraffic(
            request_ids=np.arange(start, start + r, dtype=np.int64),
            user_ids=users.astype(np.int64),
            item_ids=items if valid is None else np.where(valid, items, -1),
            positions=positions,
            pscores=self._policy.pscores(score),
            labels=labels,
            features={
                "tab": tab_rn.astype(np.int64),
                "user_active_degree": np.broadcast_to(
                    fit.user_active[users][:, None], (r, n)).astype(np.int64),
                **rates,
                "video_log_duration": per_candidate(fit.video_log_duration[items]),
                "video_log_popularity": per_candidate(np.log1p(fit.popularity[items])),
                "real_impression": real.astype(np.int64),
            },
            examination=self.examination,
            prefix_pscores=self._policy.prefix_probabilities(score, positions),
            valid=valid,
        )

    def user_true_rates(self) -> np.ndarray:
        """``[n_users, T]`` each user's true task rates: the mean, over the videos the user
        really saw (each on its page), of ``(r_c, r_c r_lv, r_like, r_pe)``; users the
        corpus never shows get the mean over every real impression."""
        if self._true_rates is None:
            fit = self.fit
            sizes = np.diff(fit.group_offsets)
            users = np.repeat(fit.group_user, sizes)
            p = _sigmoid(self._logits(users, fit.group_videos, np.repeat(fit.group_tab, sizes)))
            p[:, 1] *= p[:, 0]  # long_view unconditional
            seen = np.bincount(users, minlength=fit.n_users).astype(np.float64)
            mean = np.stack([np.bincount(users, weights=p[:, t], minlength=fit.n_users)
                             for t in range(p.shape[1])], axis=1)
            self._true_rates = np.where(seen[:, None] > 0,
                                        mean / np.maximum(seen, 1.0)[:, None], p.mean(axis=0))
        return self._true_rates

    def user_history_rates(self) -> np.ndarray:
        """``[n_users, T]`` each user's task rates over a seeded history of
        ``history_length`` impressions: ``Binomial(L, user_true_rates()) / L`` (module
        docstring); computed once per world."""
        if self._history is None:
            cfg = self.config
            rng = np.random.default_rng([cfg.seed, 20220425, 2])
            self._history = rng.binomial(cfg.history_length,
                                         self.user_true_rates()) / cfg.history_length
        return self._history

    def true_probabilities(self, traffic: LoggedTraffic) -> np.ndarray:
        """``[R, N, 4]`` what a perfect ranker predicts; long_view is given click.

        Reads ``user_ids``, ``item_ids`` and the ``tab`` feature of the log.
        """
        if "tab" not in traffic.features:
            raise ValueError("a KuaiRand world log needs its 'tab' feature (the request's page)")
        items = traffic.item_ids if traffic.valid is None else np.where(
            traffic.valid, traffic.item_ids, 0)  # padding: 0 after
        p = _sigmoid(self._logits(traffic.user_ids[:, None], items,
                                   traffic.features["tab"].astype(np.int64)))
        return p if traffic.valid is None else np.where(traffic.valid[..., None], p, 0.0)

    def _logits(self, users: np.ndarray, items: np.ndarray, tabs: np.ndarray) -> np.ndarray:
        """``[..., T]`` the fitted logits, tilted by ``taste_heterogeneity`` (see the config)."""
        logits = self.fit.logits(users, items, tabs)
        h = self.config.taste_heterogeneity
        if h:
            active = self.fit.user_active.astype(np.float64)
            z = (active - active.mean()) / max(float(active.std()), 1e-12)
            tilt = h * np.broadcast_to(z[users], logits.shape[:-1])
            logits[..., KUAIRAND_TASKS.index("long_view")] -= tilt
            logits[..., KUAIRAND_TASKS.index("like")] += tilt
        return logits

    def expected_rewards(self, traffic: LoggedTraffic) -> np.ndarray:
        """``[R, N, 4]`` ``(r_c, r_c r_lv, r_like, r_pe)``: expected labels given examination."""
        p = self.true_probabilities(traffic)
        p[..., 1] *= p[..., 0]
        return p

    def rollout(self, traffic: LoggedTraffic, slates: np.ndarray, seed: int) -> np.ndarray:
        """Draw examination and labels for a slate per request, seeded by ``(seed, config.seed)``.

        Raises:
            ValueError: if ``slates`` is not ``[R, K]`` integer indices into ``0..N-1``.
        """
        slates = np.asarray(slates)
        r, n, k = traffic.n_requests, traffic.n_candidates, len(self._examination)
        if slates.shape != (r, k) or slates.dtype.kind not in "iu":
            raise ValueError(f"slates must be integer candidate indices of shape [R, K] = "
                             f"[{r}, {k}], got {slates.dtype} {slates.shape}")
        ragged = traffic.valid is not None or not traffic.slot_shown.all()
        low = -1 if ragged else 0  # ragged: -1 is an empty slot
        if ((slates < low) | (slates >= n)).any():
            raise ValueError(f"slates hold a candidate index outside {low}..{n - 1}")
        probs = np.take_along_axis(self.true_probabilities(traffic),
                                   np.maximum(slates, 0)[:, :, None], axis=1)
        labels = _draw_labels(np.random.default_rng([seed, self.config.seed]), probs,
                              self._examination)
        if not ragged:
            return labels
        return labels * ((slates >= 0) & traffic.slot_shown)[..., None]


def _candidates(rng: np.random.Generator, fit: KuaiRandFit, groups: np.ndarray, n: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """``([R, N] video ids, [R, N] bool real)``: the visit's real videos, popular ones after.

    A visit's distinct real videos come first (a random ``n`` of them when more),
    the rest are distinct videos drawn by popularity; each row is then shuffled.
    """
    r = len(groups)
    items = np.full((r, n), -1, dtype=np.int64)
    for i, g in enumerate(groups):
        seen = np.unique(fit.group_videos[fit.group_offsets[g]:fit.group_offsets[g + 1]])
        if len(seen) > n:
            seen = rng.choice(seen, n, replace=False)
        items[i, :len(seen)] = seen
    real = items >= 0
    pop = fit.popularity / fit.popularity.sum()
    earlier = np.tri(n, k=-1, dtype=bool)  # [m, j]: slot j comes before slot m
    redo = ~real
    while redo.any():
        items[redo] = rng.choice(len(pop), size=int(redo.sum()), p=pop)
        # a slot repeats an earlier slot's video: draw it again
        same = items[:, :, None] == items[:, None, :]  # [R, N, N]
        redo = (same & earlier[None]).any(axis=2)
    order = np.argsort(rng.random((r, n)), axis=1)
    return np.take_along_axis(items, order, 1), np.take_along_axis(real, order, 1)


def _draw_labels(rng: np.random.Generator, probs: np.ndarray, examination: np.ndarray
                 ) -> np.ndarray:
    """``[R, K, 4]`` labels of the shown candidates from ``probs`` ``[R, K, 4]``.

    ``click = e Bern(r_c)``, ``long_view = click Bern(r_lv)``, ``like = e Bern(r_like)``,
    ``profile_enter = e Bern(r_pe)``, ``e ~ Bern(examination[k])``.
    """
    r, k, _ = probs.shape
    examined = rng.random((r, k)) < examination
    u = rng.random(probs.shape)
    click = examined & (u[..., 0] < probs[..., 0])
    long_view = click & (u[..., 1] < probs[..., 1])
    like = examined & (u[..., 2] < probs[..., 2])
    enter = examined & (u[..., 3] < probs[..., 3])
    return np.stack([click, long_view, like, enter], axis=-1).astype(np.float64)
