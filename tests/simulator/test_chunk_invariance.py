"""A weight vector's estimate and interval do not depend on the vectors evaluated with it.

Workers evaluate a CEM generation in chunks of members; one process evaluates it whole. Both
must store the same trials, bit for bit: values, interval ends, ESS and events.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from simulator.estimators import ESTIMATORS, make_estimator
from simulator.intervals import BootstrapInterval, NormalInterval, StudentizedBootstrapInterval
from simulator.replay import PopulationEstimate
from tests.worldkit import OBJECTIVE_WEIGHTS, make_log

LOG = make_log(seed=3, n_requests=1500)
WEIGHTS = np.random.default_rng(11).uniform(0.0, 3.0, size=(13, 3))
INTERVALS = {
    "bootstrap": BootstrapInterval(60, seed=2),
    "studentized": StudentizedBootstrapInterval(60, seed=2),
    "normal": NormalInterval(),
}
FIELDS = ("value", "low", "high", "ess", "events")


def _chunked(evaluate, size: int) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    parts: list[PopulationEstimate] = [evaluate(WEIGHTS[i:i + size])
                                       for i in range(0, len(WEIGHTS), size)]
    return {f: np.concatenate([getattr(p, f) for p in parts]) for f in FIELDS}


@pytest.mark.parametrize("interval", sorted(INTERVALS))
# rips needs prefix pscores, which this log lacks; iips is ips; pooled_dr and gated_dr pool
# each vector with the others evaluated beside it, by design (README: not chunk-invariant)
@pytest.mark.parametrize("estimator",
                         sorted(set(ESTIMATORS) - {"iips", "rips", "pooled_dr", "gated_dr"}))
def test_chunks_of_a_population_give_bit_identical_estimates(estimator: str,
                                                             interval: str) -> None:
    # request chunks of 400 too: a policy's terms are concatenated over them
    replay = replace(LOG.replay(make_estimator(estimator), INTERVALS[interval]),
                     chunk_requests=400)

    def evaluate(w: np.ndarray) -> PopulationEstimate:
        return replay.evaluate(w, OBJECTIVE_WEIGHTS)

    whole = evaluate(WEIGHTS)
    for size in (1, 3, 5):
        got = _chunked(evaluate, size)
        for f in FIELDS:
            assert np.array_equal(got[f], getattr(whole, f), equal_nan=True), (size, f)
