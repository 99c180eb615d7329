"""A seeded synthetic marketplace with known ground truth.

World model
-----------
Users ``u`` have a segment ``s_u`` (one of 8), an activity level ``a_u``
(log-normal; requests come from users in proportion to it) and three latent
taste vectors ``x_u, x'_u, x''_u``. Items ``i`` have a category ``c_i`` (one of
20), a price ``price_i`` (log-normal), a quality ``q_i`` (standard normal), a
"clickbait" attractiveness ``b_i`` (negatively correlated with quality) and
three latent vectors ``y_i, y'_i, y''_i``. Latent dot products have unit
variance. With ``z`` the standardized log price and activity, the true
probabilities *given examination* are::

    click       logit r_c = -2.6 + 0.8 x.y + 1.3 b + A[s, c] + 0.2 z_activity
    conv.|click logit r_v = -3.6 + 0.5 x.y + 1.0 x'.y' - 1.3 b - beta_s z_price + 0.5 q
    like        logit r_l = -4.4 + 1.2 q + 0.3 x.y + 0.6 x''.y'' - 0.6 b

where ``A[s, c]`` is a segment-category affinity and ``beta_s`` the segment's
price sensitivity. The tasks conflict in part: clickbait raises clicks and
lowers conversions and likes; quality (which comes with less clickbait)
raises likes and conversions. The expected rewards are ``(r_c, r_c r_v, r_l)`` for the tasks
``("click", "conversion", "like")``.

Requests and logging policy
---------------------------
A request draws a user (activity-weighted) and ``N`` distinct candidates
uniformly from the items. The production model predicts each task's
probability (``r_c``, ``r_v``, ``r_l``) with Gaussian noise on the logit
(std ``production_noise``) and fuses them as ``sum_k w_k log p_k`` with the
``logging_weights``. With probability ``1 - epsilon`` the request shows the
deterministic top-``K`` by that score, with probability ``epsilon`` a uniformly
random ordered ``K``-subset of the candidates, so the exact propensities are
``pscores[r, n, k] = (1 - epsilon) 1{rank(n) == k} + epsilon / N``.

Slot ``k`` is examined with probability ``examination[k] = 1 / (1 + k) ** eta``;
``click = examined * Bern(r_c)``, ``conversion = click * Bern(r_v)``,
``like = examined * Bern(r_l)``. Candidates not shown have position ``-1`` and
labels ``0``.

Ragged requests (``candidates="10:40"``, ``shown_slots="2:5"``): each request
draws its number of candidates ``N_r`` uniformly from the range (the log is
padded to the largest), and its user sees ``min(K, N_r, d_r)`` slots, ``d_r``
uniform in ``shown_slots``; the logger is the same epsilon-greedy top-``K``
over the request's own candidates (``epsilon / N_r``), it also logs
``prefix_pscores``, and only the slots the user sees are shown and labelled.
The true value of a policy on such a log is taken on the same slots
(:meth:`BaseWorld.policy_value`). ``generate_chunk`` draws requests chunk by
chunk (see :mod:`simulator.worlds._base`).

With the defaults the logged top slot is clicked ~0.20 of the time, ~0.16 of
its clicks convert and ~0.09 of its impressions are liked. For the objective
``clicks + 10 conversions + 5 likes``, ranking the true probabilities
``(r_c, r_v, r_l)`` by ``sum_k w_k log p_k`` earns ~9% more with
``w = (1, 0.5, 2)`` than with the logging weights ``(1, 0.5, 0.5)`` (seed 0),
with an interior optimum, so a tuner has something to find.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulator.logs import LoggedTraffic
from simulator.policies import EpsilonGreedyTopK
from simulator.worlds._base import BaseWorld, RaggedShape, parse_range

__all__ = ["MarketplaceConfig", "MarketplaceWorld"]

_TASKS = ("click", "conversion", "like")
_N_SEGMENTS = 8
_N_CATEGORIES = 20
_LOG_PRICE_MEAN = 3.0
_LOG_PRICE_STD = 0.8
_QUALITY_OBS_NOISE = 0.3
_CHUNK = 4096  # requests per chunk of latent dot products
# Intercepts of the click, conversion|click and like logits.
_INTERCEPTS = (-2.6, -3.6, -4.4)


@dataclass(frozen=True)
class MarketplaceConfig:
    """Settings of the synthetic marketplace; validated on construction.

    Args:
        n_users: number of users.
        n_items: number of items.
        n_requests: number of logged requests ``R``.
        n_candidates: candidates per request ``N`` (at most ``n_items``).
        slate_size: slots per request ``K`` (at most ``n_candidates``).
        n_factors: dimension of the latent taste vectors.
        epsilon: probability that the logging policy shows a uniformly random
            slate instead of its top-``K``; in ``(0, 1]`` so that every
            candidate has a positive propensity in every slot.
        logging_weights: the production fusion weights, one per task
            (click, conversion, like): ``score = sum_k w_k log p_k``.
        production_noise: std of the noise on the logit of the production
            model's predictions.
        examination_eta: ``examination[k] = 1 / (1 + k) ** eta``.
        seed: seed of everything (world, traffic).
        candidates: ragged requests: ``"low:high"`` (or ``(low, high)``), each request's
            number of candidates uniform in that range (``high <= n_items``);
            ``n_candidates`` is then unused. None: every request has ``n_candidates``.
        shown_slots: ``"low:high"``: the number of slots each request's user sees,
            uniform in that range (a request shows ``min(K, N_r, that)``); None: all
            it can fill.
        taste_heterogeneity: ``h >= 0``, how much users' best fusion weights differ: the
            like logit gains ``h * z_activity`` and the conversion logit loses it, so
            active users like more and buy less than quiet ones and want a larger like
            weight and a smaller conversion weight (``user_activity`` is a log feature,
            so segments of it can find this). 0 (the default) leaves the world unchanged.

    Example:
        >>> MarketplaceConfig(n_requests=1000).slate_size
        5
        >>> MarketplaceConfig(candidates="10:40", slate_size=5).candidates
        (10, 40)
    """

    n_users: int = 2000
    n_items: int = 1000
    n_requests: int = 20000
    n_candidates: int = 20
    slate_size: int = 5
    n_factors: int = 8
    epsilon: float = 0.2
    logging_weights: tuple[float, ...] = (1.0, 0.5, 0.5)
    production_noise: float = 0.5
    examination_eta: float = 0.8
    seed: int = 0
    candidates: tuple[int, int] | str | None = None
    shown_slots: tuple[int, int] | str | None = None
    taste_heterogeneity: float = 0.0

    def __post_init__(self) -> None:
        def fail(name: str, valid: str) -> ValueError:
            return ValueError(
                f"MarketplaceConfig.{name} must be {valid}, got {getattr(self, name)!r}"
            )

        for name in ("candidates", "shown_slots"):
            object.__setattr__(self, name, parse_range(getattr(self, name),
                                                       f"MarketplaceConfig.{name}"))
        if self.candidates is not None:
            high = int(self.candidates[1])
            if high > self.n_items:
                raise fail("candidates", f"a range within 1..n_items={self.n_items}")
            object.__setattr__(self, "n_candidates", high)

        for name, low in [("n_users", 1), ("n_items", 1), ("n_requests", 1),
                          ("n_candidates", 1), ("n_factors", 1), ("seed", 0)]:
            value = getattr(self, name)
            if not _is_int(value) or value < low:
                raise fail(name, f"an integer >= {low}")
        if self.n_candidates > self.n_items:
            raise fail("n_candidates", f"an integer in [1, n_items={self.n_items}]")
        most = self.n_candidates if self.candidates is None else math.inf  # ragged: any K
        if not _is_int(self.slate_size) or not 1 <= self.slate_size <= most:
            raise fail("slate_size", f"an integer in [1, n_candidates={self.n_candidates}]")

        if not _is_real(self.epsilon) or not 0.0 < self.epsilon <= 1.0:
            raise fail("epsilon", "a number in (0, 1]")
        weights = self.logging_weights
        if (not isinstance(weights, tuple) or len(weights) != len(_TASKS)
                or not all(_is_real(w) and math.isfinite(w) for w in weights)):
            raise fail("logging_weights",
                       f"a tuple of {len(_TASKS)} finite numbers, one per task {_TASKS}")
        for name in ("production_noise", "examination_eta", "taste_heterogeneity"):
            value = getattr(self, name)
            if not _is_real(value) or not (math.isfinite(value) and value >= 0.0):
                raise fail(name, "a finite number >= 0")

    @property
    def shape(self) -> RaggedShape:
        """How requests are ragged (see :class:`~simulator.worlds._base.RaggedShape`)."""
        return RaggedShape(self.candidates, self.shown_slots)  # type: ignore[arg-type]


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool
    )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class _Population:
    """Latent and observed attributes of users and items (one row per id)."""

    user_segment: np.ndarray  # [n_users] int64
    user_activity: np.ndarray  # [n_users] float64
    user_taste: np.ndarray  # [n_users, 3, d] float64, one vector per latent match
    item_category: np.ndarray  # [n_items] int64
    item_price: np.ndarray  # [n_items] float64
    item_quality: np.ndarray  # [n_items] float64, true quality
    item_quality_obs: np.ndarray  # [n_items] float64, noisy observed quality
    item_clickbait: np.ndarray  # [n_items] float64
    item_latent: np.ndarray  # [n_items, 3, d] float64
    affinity: np.ndarray  # [n_segments, n_categories] segment-category click affinity
    price_sensitivity: np.ndarray  # [n_segments]


class MarketplaceWorld(BaseWorld):
    """The seeded synthetic marketplace (see the module docstring for the model).

    Args:
        config: the world's settings.

    Example:
        >>> world = MarketplaceWorld(MarketplaceConfig(n_requests=200, seed=1))
        >>> traffic = world.generate()
        >>> world.true_value(traffic, world.logging_exposure(traffic)[None]).shape
        (1, 3)
    """

    def __init__(self, config: MarketplaceConfig = MarketplaceConfig()) -> None:
        self.config = config
        world_seq, self._traffic_seq = np.random.SeedSequence(config.seed).spawn(2)
        self._pop = _draw_population(config, np.random.default_rng(world_seq))
        k = np.arange(config.slate_size, dtype=np.float64)
        self._examination = 1.0 / (1.0 + k) ** config.examination_eta

    # ------------------------------------------------------------- contract
    @property
    def tasks(self) -> tuple[str, ...]:
        return _TASKS

    @property
    def examination(self) -> np.ndarray:
        return self._examination.copy()

    def generate(self) -> LoggedTraffic:
        """Draw the seeded logged traffic (see the module docstring).

        Returns:
            ``R`` requests of ``N`` candidates (ragged when the config says so), slate
            size ``K``, labels for ``tasks``, features ``user_segment``,
            ``user_activity``, ``item_category``, ``item_price``, ``item_quality``
            (observed with noise), and the examination curve.
        """
        rng = np.random.default_rng(self._traffic_seq)
        return self._draw(rng, self.config.n_requests, 0)

    def generate_chunk(self, n_requests: int, start_request_id: int = 0,
                       seed: int = 0) -> LoggedTraffic:
        """Requests ``start_request_id ..`` ``+ n_requests - 1``, seeded by ``(config.seed,
        seed, start_request_id)``: a log made chunk by chunk (see
        :meth:`BaseWorld.generate_chunk`); ``config.n_requests`` is unused.

        Example:
            >>> world = MarketplaceWorld(MarketplaceConfig(candidates="10:40"))
            >>> chunk = world.generate_chunk(100, start_request_id=1000, seed=3)
            >>> int(chunk.request_ids[0]), chunk.n_requests
            (1000, 100)
        """
        for name, value, low in [("n_requests", n_requests, 1),
                                 ("start_request_id", start_request_id, 0), ("seed", seed, 0)]:
            if not _is_int(value) or value < low:
                raise ValueError(f"generate_chunk {name} must be an integer >= {low}, "
                                 f"got {value!r}")
        rng = np.random.default_rng([self.config.seed, seed, start_request_id, 1])
        return self._draw(rng, n_requests, start_request_id)

    def _draw(self, rng: np.random.Generator, r: int, start: int) -> LoggedTraffic:
        """``r`` requests numbered from ``start``, drawn from ``rng``."""
        cfg, pop = self.config, self._pop
        n, k = cfg.n_candidates, cfg.slate_size
        shape = cfg.shape
        counts, depth = shape.draw(rng, r, n, k)

        weights = pop.user_activity / pop.user_activity.sum()
        users = rng.choice(cfg.n_users, size=r, p=weights)  # [R]
        items = _draw_candidates(rng, r, n, cfg.n_items)  # [R, N]
        logits = self._logits(users, items)  # [R, N, T]

        # Production model: true logits plus noise, fused as sum_k w_k log p_k.
        noisy = logits + cfg.production_noise * rng.standard_normal(logits.shape)
        log_p = -np.logaddexp(0.0, -noisy)  # log sigmoid, [R, N, T]
        score = log_p @ np.asarray(cfg.logging_weights, dtype=np.float64)  # [R, N]
        rows = np.arange(r)[:, None]
        valid = None
        prefix = None
        if not shape.ragged:
            det_order = np.argsort(-score, axis=1, kind="stable")[:, :k]  # [R, K]

            explore = rng.random(r) < cfg.epsilon  # [R]
            slates = det_order.copy()
            n_explore = int(explore.sum())
            if n_explore:
                keys = rng.random((n_explore, n))
                slates[explore] = np.argsort(keys, axis=1)[:, :k]

            positions = np.full((r, n), -1, dtype=np.int64)
            positions[rows, slates] = np.arange(k)
            pscores = np.full((r, n, k), cfg.epsilon / n)
            pscores[rows, det_order, np.arange(k)] += 1.0 - cfg.epsilon
            seen = np.ones((r, k), dtype=bool)
        else:  # the same logger over each request's own candidates
            valid = np.arange(n)[None, :] < counts[:, None]
            score = np.where(valid, score, -np.inf)
            logger = EpsilonGreedyTopK(k, cfg.epsilon)
            slates = logger.sample(score, seed=int(rng.integers(2**63)))  # [R, K], -1: empty
            seen = np.arange(slates.shape[1])[None, :] < depth[:, None]
            slates = np.where(seen, slates, -1)
            positions = np.full((r, n), -1, dtype=np.int64)
            rr, jj = np.nonzero(slates >= 0)
            positions[rr, slates[rr, jj]] = jj
            pscores = logger.pscores(score)
            prefix = logger.prefix_probabilities(score, positions)
            items = np.where(valid, items, -1)

        slot_items = np.maximum(slates, 0)
        slot_probs = np.take_along_axis(_sigmoid(logits), slot_items[:, :, None], axis=1)
        slot_labels = _draw_labels(rng, slot_probs, self._examination[: slates.shape[1]])
        labels = {}
        rr, jj = np.nonzero(slates >= 0)
        for t, task in enumerate(_TASKS):
            lab = np.zeros((r, n))
            lab[rr, slates[rr, jj]] = slot_labels[rr, jj, t]
            labels[task] = lab

        safe = np.maximum(items, 0)

        def per_candidate(values: np.ndarray) -> np.ndarray:
            return values if valid is None else np.where(valid, values, 0)

        features = {
            "user_segment": per_candidate(np.broadcast_to(
                pop.user_segment[users][:, None], (r, n)).copy()),
            "user_activity": per_candidate(np.broadcast_to(
                pop.user_activity[users][:, None], (r, n)).copy()),
            "item_category": per_candidate(pop.item_category[safe]),
            "item_price": per_candidate(pop.item_price[safe]),
            "item_quality": per_candidate(pop.item_quality_obs[safe]),
        }
        return LoggedTraffic(
            request_ids=np.arange(start, start + r, dtype=np.int64),
            user_ids=users.astype(np.int64),
            item_ids=items.astype(np.int64),
            positions=positions,
            pscores=pscores,
            labels=labels,
            features=features,
            examination=self.examination,
            prefix_pscores=prefix,
            valid=valid,
        )

    def expected_rewards(self, traffic: LoggedTraffic) -> np.ndarray:
        """``[R, N, 3]`` ``(r_c, r_c * r_v, r_l)``: expected labels given examination."""
        p = self.true_probabilities(traffic)
        p[..., 1] *= p[..., 0]
        return p

    def rollout(self, traffic: LoggedTraffic, slates: np.ndarray, seed: int) -> np.ndarray:
        """Draw examination and labels for a slate per request.

        The stream is seeded by ``(seed, config.seed)``, so different worlds
        with the same ``seed`` draw independently.

        Args:
            traffic: a log of this world.
            slates: ``[R, K]`` candidate indices into the ``N`` axis (on a ragged log,
                ``-1``: an empty slot; the slots a request does not show get no labels).
            seed: seed of the draw.

        Returns:
            ``[R, K, 3]`` float64 labels (click, conversion, like).

        Raises:
            ValueError: if ``slates`` is not ``[R, K]`` or holds an index outside ``0..N-1``.
        """
        slates = np.asarray(slates)
        r, n, k = traffic.n_requests, traffic.n_candidates, len(self._examination)
        if slates.shape != (r, k) or slates.dtype.kind not in "iu":
            raise ValueError(
                f"slates must be integer candidate indices of shape [R, K] = [{r}, {k}], "
                f"got {slates.dtype} {slates.shape}"
            )
        ragged = traffic.valid is not None or not traffic.slot_shown.all()
        low = -1 if ragged else 0
        if ((slates < low) | (slates >= n)).any():
            raise ValueError(f"slates hold a candidate index outside {low}..{n - 1}")
        probs = np.take_along_axis(self.true_probabilities(traffic),
                                   np.maximum(slates, 0)[:, :, None], axis=1)
        rng = np.random.default_rng([seed, self.config.seed])
        labels = _draw_labels(rng, probs, self._examination)
        if not ragged:
            return labels
        return labels * ((slates >= 0) & traffic.slot_shown)[..., None]

    # --------------------------------------------------------------- extras
    def true_probabilities(self, traffic: LoggedTraffic) -> np.ndarray:
        """What a perfect ranker would predict: ``[R, N, 3]`` ``(r_c, r_v, r_l)``.

        Conversion is the conditional rate given a click (its sample space is
        clicks), unlike in ``expected_rewards``. 0 on the padding of a ragged log.
        """
        if traffic.valid is None:
            return _sigmoid(self._logits(traffic.user_ids, traffic.item_ids))
        items = np.where(traffic.valid, traffic.item_ids, 0)  # padding: 0 after
        p = _sigmoid(self._logits(traffic.user_ids, items))
        return np.where(traffic.valid[..., None], p, 0.0)

    # ------------------------------------------------------------- internal
    def _logits(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """``[R, N, 3]`` true logits of (click, conversion | click, like).

        Args:
            users: ``[R]`` user ids.
            items: ``[R, N]`` item ids.
        """
        pop, cfg = self._pop, self.config
        users, items = np.asarray(users), np.asarray(items)
        if users.size and not (users.min() >= 0 and users.max() < cfg.n_users):
            raise ValueError(f"user_ids must be in 0..{cfg.n_users - 1} for this world")
        if items.size and not (items.min() >= 0 and items.max() < cfg.n_items):
            raise ValueError(f"item_ids must be in 0..{cfg.n_items - 1} for this world")
        # [R, N, 3] latent dot products: taste, purchase intent, liking. In chunks of
        # requests, so the gathered item vectors ([chunk, N, 3, d]) stay small.
        match = np.empty((*items.shape, 3))
        for start in range(0, len(users), _CHUNK):
            sl = slice(start, start + _CHUNK)
            match[sl] = np.einsum("rjd,rnjd->rnj", pop.user_taste[users[sl]],
                                  pop.item_latent[items[sl]])
        seg = pop.user_segment[users][:, None]  # [R, 1]
        act = np.log(pop.user_activity[users])[:, None]  # [R, 1], ~N(0, 0.5)
        z_act = act / 0.5
        z_price = (np.log(pop.item_price[items]) - _LOG_PRICE_MEAN) / _LOG_PRICE_STD
        bait = pop.item_clickbait[items]
        quality = pop.item_quality[items]
        a_c, a_v, a_l = _INTERCEPTS
        out = np.empty((*items.shape, 3))
        out[..., 0] = (a_c + 0.8 * match[..., 0] + 1.3 * bait
                       + pop.affinity[seg, pop.item_category[items]] + 0.2 * z_act)
        out[..., 1] = (a_v + 0.5 * match[..., 0] + 1.0 * match[..., 1] - 1.3 * bait
                       - pop.price_sensitivity[seg] * z_price + 0.5 * quality)
        out[..., 2] = (a_l + 1.2 * quality + 0.3 * match[..., 0] + 0.6 * match[..., 2]
                       - 0.6 * bait)
        if cfg.taste_heterogeneity:  # tastes that differ with activity (config docstring)
            out[..., 1] -= cfg.taste_heterogeneity * z_act
            out[..., 2] += cfg.taste_heterogeneity * z_act
        return out


def _draw_population(cfg: MarketplaceConfig, rng: np.random.Generator) -> _Population:
    d = cfg.n_factors
    # Entries with variance 1/sqrt(d) give unit-variance dot products.
    scale = d ** -0.25
    quality = rng.standard_normal(cfg.n_items)
    return _Population(
        user_segment=rng.integers(0, _N_SEGMENTS, cfg.n_users).astype(np.int64),
        user_activity=rng.lognormal(0.0, 0.5, cfg.n_users),
        user_taste=scale * rng.standard_normal((cfg.n_users, 3, d)),
        item_category=rng.integers(0, _N_CATEGORIES, cfg.n_items).astype(np.int64),
        item_price=rng.lognormal(_LOG_PRICE_MEAN, _LOG_PRICE_STD, cfg.n_items),
        item_quality=quality,
        item_quality_obs=quality + _QUALITY_OBS_NOISE * rng.standard_normal(cfg.n_items),
        item_clickbait=-0.5 * quality + math.sqrt(0.75) * rng.standard_normal(cfg.n_items),
        item_latent=scale * rng.standard_normal((cfg.n_items, 3, d)),
        affinity=0.5 * rng.standard_normal((_N_SEGMENTS, _N_CATEGORIES)),
        price_sensitivity=rng.uniform(0.2, 1.2, _N_SEGMENTS),
    )


def _draw_candidates(rng: np.random.Generator, r: int, n: int, n_items: int) -> np.ndarray:
    """``[R, N]`` int64 item ids, each row ``N`` distinct items drawn uniformly.

    Rows drawn with replacement are kept when they have no repeat and redrawn
    otherwise (exact, and cheap while ``N**2`` is small against ``n_items``);
    otherwise random sort keys over all items.
    """
    if n * n > 4 * n_items:
        return np.argsort(rng.random((r, n_items)), axis=1)[:, :n].astype(np.int64)
    items = rng.integers(0, n_items, size=(r, n), dtype=np.int64)
    redo = np.arange(r)
    while redo.size:
        s = np.sort(items[redo], axis=1)
        redo = redo[(s[:, 1:] == s[:, :-1]).any(axis=1)]
        items[redo] = rng.integers(0, n_items, size=(redo.size, n), dtype=np.int64)
    return items


def _draw_labels(
    rng: np.random.Generator, probs: np.ndarray, examination: np.ndarray
) -> np.ndarray:
    """Draw position-based labels for the shown candidates.

    Args:
        rng: the random stream.
        probs: ``[R, K, 3]`` true ``(r_c, r_v, r_l)`` of the candidate in each slot.
        examination: ``[K]`` examination probability of each slot.

    Returns:
        ``[R, K, 3]`` float64 labels: ``click = e Bern(r_c)``, ``conversion =
        click Bern(r_v)``, ``like = e Bern(r_l)``, with ``e ~ Bern(examination[k])``.
    """
    r, k, _ = probs.shape
    examined = rng.random((r, k)) < examination  # [R, K]
    u = rng.random(probs.shape)
    click = examined & (u[..., 0] < probs[..., 0])
    conversion = click & (u[..., 1] < probs[..., 1])
    like = examined & (u[..., 2] < probs[..., 2])
    return np.stack([click, conversion, like], axis=-1).astype(np.float64)
