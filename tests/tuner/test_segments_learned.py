"""The learned weight model: starts at the global pick, learns, exports faithfully."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from simulator.estimators import SNIPS, SlateFeedback
from tests.worldkit import FUSION, OBJECTIVE_WEIGHTS, TASKS, WorldLog, make_log
from tuner.segments import request_feature
from tuner.segments._learned import (
    LogArrays,
    WeightModelConfig,
    surrogate,
    train_weight_model,
    weights_from_json,
)

torch = pytest.importorskip("torch")
OBJ = np.array([OBJECTIVE_WEIGHTS[t] for t in TASKS], dtype=np.float32)
BASE = np.array([1.0, 0.8, 2.0])


def _arrays(log: WorldLog) -> LogArrays:
    fb = SlateFeedback.from_traffic(log.traffic, TASKS)
    x = np.stack([np.log(request_feature(log.traffic, "user_activity")),
                  request_feature(log.traffic, "user_segment")], axis=1)
    return LogArrays(FUSION.transform(log.scores), (fb.rewards @ OBJ).astype(np.float32),
                     fb.shown.astype(np.float32), fb.logging_exposure, fb.slot_examination,
                     log.world.examination, x.astype(np.float32))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.load
def test_starts_at_the_global_pick_learns_and_exports(tmp_path: Path) -> None:
    data = _arrays(make_log(0, 600))
    cfg = WeightModelConfig(epochs=8, patience=8)
    untrained = train_weight_model(data, BASE, ("a", "s"), TASKS,
                                   WeightModelConfig(epochs=0))
    np.testing.assert_allclose(untrained.weights(data.features), np.tile(BASE, (600, 1)),
                               rtol=1e-6)
    learned = train_weight_model(data, BASE, ("a", "s"), TASKS, cfg)
    start, *trained = learned.history
    assert start[0] == 0 and np.isnan(start[1])  # the start: validated, never trained
    train_values = [h[1] for h in trained]
    assert max(train_values) > train_values[0]  # the surrogate rises from the start
    # the kept model is a trained one, the epoch of the best validation surrogate
    assert learned.best_epoch >= 1 and learned.epochs_run == len(trained)
    assert learned.history[learned.best_epoch][2] == max(h[2] for h in trained)
    w = learned.weights(data.features)
    assert (w > 0).all() and np.allclose(w[:, 0], 1.0)  # positive, click pinned
    pt, js = learned.export(tmp_path)
    held_out = _arrays(make_log(1, 200)).features
    scripted = torch.jit.load(str(pt))
    with torch.no_grad():
        again = scripted(torch.from_numpy(held_out)).double().numpy()
    np.testing.assert_allclose(again, learned.weights(held_out), rtol=1e-6)
    np.testing.assert_allclose(weights_from_json(json.loads(js.read_text()), held_out),
                               learned.weights(held_out), rtol=1e-5)


def test_surrogate_tends_to_the_replay_estimate_as_tau_falls() -> None:
    log = make_log(2, 400)
    data = _arrays(log)
    untrained = train_weight_model(data, BASE, ("a", "s"), TASKS,
                                   WeightModelConfig(epochs=0))
    exact = log.replay(SNIPS()).evaluate(BASE[None], OBJECTIVE_WEIGHTS).value[0, -1]
    with torch.no_grad():
        smooth = float(surrogate(untrained.model, data, 1e-4))
    assert smooth == pytest.approx(exact, rel=1e-3)


def test_chunked_surrogate_is_the_whole_one() -> None:
    data = _arrays(make_log(3, 500))
    model = train_weight_model(data, BASE, ("a", "s"), TASKS,
                               WeightModelConfig(epochs=0)).model
    with torch.no_grad():
        whole = float(surrogate(model, data, 0.1))
        for chunk in (1, 7, 128, 499, 500, 10_000):
            assert float(surrogate(model, data, 0.1, chunk)) == pytest.approx(whole, rel=1e-5)


def test_one_batch_of_every_request_is_full_batch_training() -> None:
    data = _arrays(make_log(4, 400))
    cfg = WeightModelConfig(epochs=5, patience=5)
    full = train_weight_model(data, BASE, ("a", "s"), TASKS, cfg)
    one = train_weight_model(data, BASE, ("a", "s"), TASKS,
                             WeightModelConfig(epochs=5, patience=5, batch_requests=300))
    assert [h[2] for h in one.history] == [h[2] for h in full.history]
    np.testing.assert_array_equal(one.weights(data.features), full.weights(data.features))


def test_auto_batch_is_full_batch_on_small_logs_only() -> None:
    from tuner.segments._learned import BATCH_ENTRIES, auto_batch

    assert auto_batch(20_000, 20) is None
    assert auto_batch(2_000_000, 20) == BATCH_ENTRIES // 400
    assert auto_batch(10 ** 9, 500) == 256  # never below 256 requests a step
    with pytest.raises(ValueError, match="batch_requests must be >= 1"):
        WeightModelConfig(batch_requests=0)
