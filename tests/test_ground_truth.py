"""Estimators and the search, checked against the marketplace's exact ground truth.

The synthetic marketplace knows the expected reward of every logged candidate, so the
true value of any fusion weight vector on a log's requests is exact
(``world.true_value``). These tests check what the product promises against it:

* IPS and SNIPS intervals cover the true value at about their nominal rate, and the
  estimates are unbiased, on the world's own logs;
* the best of many noisy estimates overstates its true value (the winner's curse),
  while re-estimating it on held-out requests does not;
* CEM on SNIPS estimates finds a weight vector within 2% of the best true value of a
  dense random search, and the same seed gives the same search.

"Model scores" are the world's true probabilities times seeded log-normal noise (an
imperfect ranker, see ``tests/worldkit.py``); weights are ``(1, w_conversion, w_like)``
with the free weights in ``[0, 4]``; the objective is ``clicks + 10 conversions + 5
likes``. Everything is seeded, so every number below is the same on every run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from simulator.estimators import IPS, SNIPS, BaseEstimator
from simulator.intervals import BootstrapInterval, NormalInterval, point_values
from simulator.replay import OBJECTIVE, objective_matrix
from tests.worldkit import (
    OBJECTIVE_WEIGHTS,
    SPACE,
    TASKS,
    WorldLog,
    make_log,
    objective_of,
    random_weights,
    run_cem,
)
from tuner.evaluation.search_data import HOLDOUT, SEARCH, split_log
from tuner.strategies import CEMConfig

METRICS = (*TASKS, OBJECTIVE)
ESTIMATORS: dict[str, BaseEstimator] = {"ips": IPS(), "snips": SNIPS()}

# --------------------------------------------------------------------------------------
# 1. Coverage and bias of IPS and SNIPS on the world's logs
# --------------------------------------------------------------------------------------
COVERAGE_SEEDS = 100
COVERAGE_REQUESTS = 3000
VECTORS_PER_SEED = 3
BOOTSTRAP_SEEDS = 40  # the first seeds also get a bootstrap interval


@dataclass(frozen=True)
class CoverageRun:
    """Errors and hits of one estimator over seeds; arrays ``[seeds, vectors, metrics]``."""

    error: np.ndarray  # estimate - truth
    truth: np.ndarray
    normal_hit: np.ndarray  # truth inside the NormalInterval
    bootstrap_hit: np.ndarray  # truth inside the BootstrapInterval, first BOOTSTRAP_SEEDS


@pytest.fixture(scope="module")
def coverage() -> dict[str, CoverageRun]:
    """Each seed: a fresh world and log, 3 random weight vectors, both estimators."""
    combine = objective_matrix(TASKS, OBJECTIVE_WEIGHTS)
    rows: dict[str, list[tuple[np.ndarray, ...]]] = {name: [] for name in ESTIMATORS}
    for seed in range(COVERAGE_SEEDS):
        log = make_log(seed, COVERAGE_REQUESTS)
        weights = random_weights(np.random.default_rng([seed, 1]), VECTORS_PER_SEED)
        per_task = log.true_values(weights)  # [P, 3], via world.true_value
        truth = np.concatenate([per_task, objective_of(per_task)[:, None]], axis=1)
        for name, estimator in ESTIMATORS.items():
            replay = log.replay(estimator, NormalInterval())
            result = replay.evaluate(weights, OBJECTIVE_WEIGHTS)
            assert result.metrics == METRICS
            normal_hit = (result.low <= truth) & (truth <= result.high)
            boot_hit = np.zeros_like(normal_hit)
            if seed < BOOTSTRAP_SEEDS:
                terms = replay.terms(weights)
                np.testing.assert_allclose(point_values(terms, combine), result.value)
                low, high = BootstrapInterval(n_resamples=200, seed=seed).bounds(terms, combine)
                boot_hit = (low <= truth) & (truth <= high)
            rows[name].append((result.value - truth, truth, normal_hit, boot_hit))
    return {name: CoverageRun(*(np.stack(col) for col in zip(*r, strict=True)))
            for name, r in rows.items()}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_normal_interval_covers_the_true_value(name: str, coverage: dict[str, CoverageRun]
                                               ) -> None:
    """The 95% normal interval holds the true value in 90-99% of 300 (seed, vector) cases.

    Fails if the interval is too narrow (e.g. a standard error over the wrong count, a
    dropped delta-method term for SNIPS) or too wide, or if the estimate is biased.
    The objective is held to [0.90, 0.99]. Per task the bound is looser (>= 0.85):
    conversions are rare (~3% of top-slot impressions), their importance-weighted sums
    are skewed, and the normal interval under-covers them at 3,000 requests (~0.89).
    """
    run = coverage[name]
    rate = run.normal_hit.mean(axis=(0, 1))  # [metrics]
    by_metric = dict(zip(METRICS, rate.round(3).tolist(), strict=True))
    print(f"\n{name} normal-interval coverage: {by_metric}")
    assert 0.90 <= by_metric[OBJECTIVE] <= 0.99, by_metric
    assert all(0.85 <= c <= 0.99 for c in by_metric.values()), by_metric


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_bootstrap_interval_covers_the_true_value(
    name: str, coverage: dict[str, CoverageRun]
) -> None:
    """The 95% percentile bootstrap (200 resamples) covers the true objective in 90-99%.

    On 40 seeds x 3 vectors. Fails if the bootstrap resamples something other than
    requests (too narrow) or mixes up policies or metrics in its matrix product.
    """
    hit = coverage[name].bootstrap_hit[:BOOTSTRAP_SEEDS]
    rate = hit.mean(axis=(0, 1))
    by_metric = dict(zip(METRICS, rate.round(3).tolist(), strict=True))
    print(f"\n{name} bootstrap coverage: {by_metric}")
    assert 0.90 <= rate[METRICS.index(OBJECTIVE)] <= 0.99, rate
    assert (rate >= 0.85).all(), rate


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_estimate_is_unbiased_for_the_true_value(
    name: str, coverage: dict[str, CoverageRun]
) -> None:
    """Mean error over 100 seeds is within 3 standard errors of 0, for every metric.

    Seeds are the independent unit (the 3 vectors of a seed share its log), so the
    error is averaged within a seed first. Fails on a biased estimator: a wrong
    propensity (e.g. the logged slot's pscore instead of the examination-weighted
    exposure), a wrong SNIPS scale, or a mismatch of tasks and reward columns.
    """
    run = coverage[name]
    per_seed = run.error.mean(axis=1)  # [seeds, metrics]
    mean = per_seed.mean(axis=0)
    se = per_seed.std(axis=0, ddof=1) / np.sqrt(len(per_seed))
    relative = mean / run.truth.mean(axis=(0, 1))
    print(f"\n{name} mean error / SE: {np.round(mean / se, 2).tolist()}, "
          f"relative: {np.round(relative, 4).tolist()}")
    assert (np.abs(mean) < 3 * se).all(), mean / se


# --------------------------------------------------------------------------------------
# 2. The winner's curse, and held-out re-estimation as its cure
# --------------------------------------------------------------------------------------
CURSE_SEEDS = 40
CURSE_REQUESTS = 3000
CURSE_VECTORS = 200


@pytest.fixture(scope="module")
def winners_curse() -> np.ndarray:
    """``[seeds, 3]``: (search estimate - truth, held-out estimate - truth, truth) of the winner.

    Each seed splits its log's requests into search and held-out halves
    (``tuner.evaluation.search_data.split_log``), estimates 200 random vectors by SNIPS on
    the search half and takes the best-estimated one. Each estimate is compared with the true
    value *on the requests it was computed from* (search truth for the search estimate,
    held-out truth for the held-out one): the truth then differs from the estimate only
    by the logging and label noise the estimator averages over, which is what the
    selection exploits, and not by the sampling of requests, which the truth shares.
    """
    rows = []
    for seed in range(CURSE_SEEDS):
        log = make_log(seed, CURSE_REQUESTS)
        parts = split_log(log.traffic, {SEARCH: 0.5, HOLDOUT: 0.5}, seed=seed)
        search, holdout = log.part(parts[SEARCH]), log.part(parts[HOLDOUT])
        weights = random_weights(np.random.default_rng([seed, 2]), CURSE_VECTORS)
        estimates = search.estimate(search.replay(SNIPS()), weights)
        winner = weights[[int(np.argmax(estimates))]]
        search_error = estimates.max() - search.true_objective(winner)[0]
        held_truth = holdout.true_objective(winner)[0]
        held_error = holdout.estimate(holdout.replay(SNIPS()), winner)[0] - held_truth
        rows.append((search_error, held_error, held_truth))
    return np.array(rows)


@pytest.mark.slow
def test_best_estimate_is_biased_up_and_held_out_estimate_is_not(
    winners_curse: np.ndarray,
) -> None:
    """The winner's search-half estimate overstates its truth; its held-out one does not.

    Fails if the search-half bias is not > 3 SE above 0 (selection by estimate would
    then be harmless, or the estimates would not depend on the labels), or if the
    held-out bias is not within 3 SE of 0 (held-out requests leaking into the search
    half, e.g. a split that is not disjoint, or a biased estimator).
    """
    search_error, held_error, truth = winners_curse.T
    se = winners_curse.std(axis=0, ddof=1) / np.sqrt(len(winners_curse))
    print(f"\nwinner's curse over {CURSE_SEEDS} seeds: search bias {search_error.mean():+.4f} "
          f"({search_error.mean() / se[0]:+.1f} SE, {search_error.mean() / truth.mean():+.2%}), "
          f"held-out bias {held_error.mean():+.4f} ({held_error.mean() / se[1]:+.1f} SE, "
          f"{held_error.mean() / truth.mean():+.2%})")
    assert search_error.mean() > 3 * se[0]
    assert abs(held_error.mean()) < 3 * se[1]
    assert held_error.mean() < search_error.mean()


# --------------------------------------------------------------------------------------
# 3. CEM against a dense random search, on the truth
# --------------------------------------------------------------------------------------
CEM_REQUESTS = 20_000
CEM_CONFIG = CEMConfig(population=48)
CEM_GENERATIONS = 12
CEM_SEEDS = (0, 1, 2, 3)
DENSE_VECTORS = 20_000
SCREEN_REQUESTS = 500
SCREEN_KEEP = 200


@dataclass(frozen=True)
class CEMRun:
    """One CEM search on a world's search split and the truth of its picks."""

    log: WorldLog
    mean_weights: np.ndarray  # [3], CEM's final mean
    best_weights: np.ndarray  # [3], the best-estimated trial of the whole run
    best_estimate: float  # the best trial's search-split estimate
    mean_truth: float  # true objective of the final mean on the whole log
    best_truth: float


def _cem_run(seed: int) -> CEMRun:
    log = make_log(seed, CEM_REQUESTS)
    search = log.part(split_log(log.traffic, {SEARCH: 0.5, HOLDOUT: 0.5}, seed=seed)[SEARCH])
    cem, history = run_cem(search, search.replay(SNIPS()), CEM_CONFIG, CEM_GENERATIONS, seed)
    X = np.concatenate([x for x, _ in history])
    values = np.concatenate([v for _, v in history])
    weights = SPACE.matrix_to_weights(np.stack([np.asarray(cem.state.mean), X[np.argmax(values)]]))
    mean_truth, best_truth = log.true_objective(weights)
    return CEMRun(log, weights[0], weights[1], float(values.max()), float(mean_truth),
                  float(best_truth))


@pytest.fixture(scope="module")
def cem_runs() -> dict[int, CEMRun]:
    """CEM (12 generations of 48) on SNIPS estimates of the search half of 20,000 requests.

    The true value is taken on the whole log, the same requests for every vector.
    """
    return {seed: _cem_run(seed) for seed in CEM_SEEDS}


def _dense_search(log: WorldLog, seed: int) -> np.ndarray:
    """True objective ``[SCREEN_KEEP]`` on the whole log of the best of 20,000 random vectors.

    Exact truth for 20,000 vectors on 20,000 requests is 4e8 top-k's (minutes), so the
    dense search screens all 20,000 by their exact true value on 500 random requests of
    the log, then takes the exact truth on the whole log of the 200 best screened.
    Checked once against the exhaustive search: on seed 0 (the one asserted on) it
    finds the same best vector (ranked 81st of the 200 kept); on seed 3 its best falls
    short of the exhaustive one by 0.03%, far inside the 2% the test allows.
    """
    dense = random_weights(np.random.default_rng([seed, 3]), DENSE_VECTORS)
    rows = np.random.default_rng([seed, 4]).choice(log.traffic.n_requests, SCREEN_REQUESTS,
                                                   replace=False)
    screen = log.part(log.traffic.take(rows)).true_objective(dense)
    keep = np.argsort(-screen)[:SCREEN_KEEP]
    # The landscape must not be flat, or "within 2% of the best" would prove nothing.
    assert screen.min() < 0.85 * screen.max(), (screen.min(), screen.max())
    return log.true_objective(dense[keep])


def test_true_objective_matches_world_true_value() -> None:
    """The fast truth used for the dense search equals ``world.true_value``'s.

    Fails if the gather-based shortcut in ``WorldLog.true_objective`` ranks, weights
    slots or averages requests differently from exposure x expected rewards.
    """
    log = make_log(11, 1500)
    weights = random_weights(np.random.default_rng(0), 7)
    np.testing.assert_allclose(log.true_objective(weights),
                               objective_of(log.true_values(weights)), rtol=1e-6)


@pytest.mark.slow
def test_cem_mean_is_within_two_percent_of_dense_search_best(cem_runs: dict[int, CEMRun]
                                                             ) -> None:
    """CEM's final mean earns >= 98% of the best true value among 20,000 random vectors.

    CEM sees only noisy SNIPS estimates from half the log (12 x 48 = 576 evaluations);
    the dense search sees the truth. Fails if CEM converges to a bad region (e.g. it
    minimises, mis-maps its points to weights, or refits to the wrong elite), or if the
    replay's ranking differs from the one the truth is computed for.
    """
    run = cem_runs[CEM_SEEDS[0]]
    dense_best = float(_dense_search(run.log, CEM_SEEDS[0]).max())
    print(f"\nseed {CEM_SEEDS[0]}: CEM mean {run.mean_weights.round(3).tolist()} true "
          f"{run.mean_truth:.4f} ({run.mean_truth / dense_best:.2%} of dense best "
          f"{dense_best:.4f}); best trial true {run.best_truth:.4f} "
          f"({run.best_truth / dense_best:.2%})")
    assert run.mean_truth >= 0.98 * dense_best


@pytest.mark.slow
def test_cem_mean_is_as_good_as_the_best_trial_on_average(cem_runs: dict[int, CEMRun]
                                                          ) -> None:
    """Over 4 seeds, CEM's final mean is on average within 0.5% of its best trial's truth.

    The best trial is picked on its (optimistic) estimate; the mean averages the last
    elites. Also shows the best trial's search estimate overstating its truth. Fails
    if the exported default pick (CEM's mean) were clearly the worse choice on this world.
    On this world the two are tied: over seeds 4-13 (not asserted on) the mean's truth is
    +0.01% +- 0.12% (sd) of the best trial's, the mean better on 6 of 10; on seeds 0-3,
    since the split is a hash of the request id, -0.22%. (The strict "at least as good"
    this test asked before held on the permutation split's seeds 0-3 by chance.)
    """
    mean_truth = np.array([r.mean_truth for r in cem_runs.values()])
    best_truth = np.array([r.best_truth for r in cem_runs.values()])
    overstatement = np.array([r.best_estimate / r.best_truth - 1 for r in cem_runs.values()])
    print(f"\nCEM mean true {mean_truth.round(4).tolist()}, best trial true "
          f"{best_truth.round(4).tolist()}, best trial's search estimate overstates its "
          f"whole-log truth by {np.round(overstatement, 3).tolist()}")
    assert mean_truth.mean() >= 0.995 * best_truth.mean()


# --------------------------------------------------------------------------------------
# 4. Same seed, same search
# --------------------------------------------------------------------------------------
def test_same_seed_gives_the_same_cem_trajectory_on_the_world() -> None:
    """Two runs from scratch (world, log, scores, split, CEM) with one seed are identical.

    Fails on any unseeded randomness: world generation, score noise, the split, the
    replay (e.g. a non-deterministic top-k tie-break), or CEM's sampling. A different
    CEM seed must change the populations, so the comparison is not vacuous.
    """
    def run(cem_seed: int) -> tuple[tuple[float, ...], list[tuple[np.ndarray, np.ndarray]]]:
        log = make_log(5, 4000)
        search = log.part(split_log(log.traffic, {SEARCH: 0.5, HOLDOUT: 0.5}, seed=5)[SEARCH])
        config = CEMConfig(population=32)
        cem, history = run_cem(search, search.replay(SNIPS()), config, 4, cem_seed)
        return cem.state.mean, history

    mean_a, history_a = run(1)
    mean_b, history_b = run(1)
    assert mean_a == mean_b
    for (xa, va), (xb, vb) in zip(history_a, history_b, strict=True):
        assert np.array_equal(xa, xb)
        assert np.array_equal(va, vb)
    mean_c, history_c = run(2)
    assert not np.array_equal(history_a[0][0], history_c[0][0])
    assert mean_c != mean_a


# --------------------------------------------------------------------------------------
# 4. Ragged logs through every estimator
# --------------------------------------------------------------------------------------
RAGGED_SEEDS = 40
RAGGED_REQUESTS = 2000
RAGGED = ("3:12", "2:5")  # candidates, shown slots; K = 5: some requests fill fewer
UNBIASED = ("ips", "snips", "dr", "sndr", "rips", "pi", "slot_ips", "slot_snips", "slot_dr")
"""Unbiased (or consistent, bias O(1/R)) under the marketplace's position-based model,
which is also an item-position model, a prefix (cascade-free) model and additive; the
others are biased by design (``dm``, ``switch``, ``switch_dr``: the noisy reward model;
``clipped_ips``: the clip; ``pooled_dr``: its shrinkage) and are only run."""


@pytest.fixture(scope="module")
def ragged_errors() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``name -> [seeds, vectors]`` objective error of every registered estimator on ragged
    logs (3..12 candidates, 2..5 slots seen), and the truths ``[seeds, vectors]``."""
    from simulator.estimators import ESTIMATORS, make_estimator

    names = [n for n in ESTIMATORS if n != "iips"]  # iips is ips
    errors: dict[str, list[np.ndarray]] = {n: [] for n in names}
    truths = []
    for seed in range(RAGGED_SEEDS):
        log = make_log(seed, RAGGED_REQUESTS, candidates=RAGGED[0], shown_slots=RAGGED[1])
        weights = random_weights(np.random.default_rng([seed, 4]), VECTORS_PER_SEED)
        truth = log.true_objective(weights)
        truths.append(truth)
        for name in names:
            errors[name].append(log.estimate(log.replay(make_estimator(name)), weights) - truth)
    return {n: np.array(e) for n, e in errors.items()}, np.array(truths)


@pytest.mark.slow
def test_every_estimator_on_ragged_logs_is_unbiased_where_it_should_be(
    ragged_errors: tuple[dict[str, np.ndarray], np.ndarray],
) -> None:
    """On 40 ragged logs the unbiased estimators' mean objective error is within 3 SE of 0.

    Requests have 3 to 12 candidates (fewer than the 5 slots in some) and their users see
    2 to 5 slots; the truth is each weight vector's exact value on the slots each request
    shows (``world.policy_value``). Fails if padding is ranked or exposed, if a request's
    slots are valued beyond those it shows (logging exposure, SNIPS's scale, the
    slot-wise normalizer, ``pi``'s groups), or on any wrong propensity of a ragged
    logger (``epsilon / N_r``).
    """
    errors, truth = ragged_errors
    for name, err in errors.items():
        per_seed = err.mean(axis=1)
        mean, se = per_seed.mean(), per_seed.std(ddof=1) / np.sqrt(len(per_seed))
        print(f"\n{name}: mean error {mean:+.4f} ({mean / se:+.2f} SE, "
              f"{mean / truth.mean():+.2%} of the truth)")
        assert np.isfinite(err).all(), name
        if name in UNBIASED:
            assert abs(mean) < 3 * se, (name, mean / se)
