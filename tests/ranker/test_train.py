from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from ranker import (
    RankerData,
    TaskSpec,
    TrainConfig,
    build_mmoe,
    encode_features,
    encode_labels,
    evaluate,
    model_fingerprint,
    task_losses,
    train,
)
from tests.ranker.synth import FEATURES, SMALL, TASKS, make_data

FAST = TrainConfig(epochs=4, batch_size=256, lr=5e-3, patience=2, seed=0)


@pytest.fixture(scope="module")
def splits() -> tuple[RankerData, RankerData]:
    return make_data(8000, seed=1), make_data(3000, seed=2)


@pytest.fixture(scope="module")
def trained(splits):  # type: ignore[no-untyped-def]
    train_data, valid_data = splits
    model = build_mmoe(FEATURES, TASKS, SMALL)
    before = evaluate(model, valid_data)
    return before, train(model, train_data, valid_data, FAST, progress=False)


@pytest.mark.slow
def test_training_reduces_loss_and_learns_every_task(trained, splits) -> None:  # type: ignore[no-untyped-def]
    before, result = trained
    hist = result.history
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert min(h["valid_loss"] for h in hist) < sum(m.logloss for m in before.values())
    for task in ("click", "like", "conversion"):
        assert result.valid_metrics[task].auc > 0.65, (task, result.valid_metrics[task])
        assert result.valid_metrics[task].logloss < before[task].logloss
        assert 0.7 < result.valid_metrics[task].calibration < 1.3
    # conversion is measured over clicked rows only
    n_clicks = int(splits[1].labels["click"].sum())
    assert result.valid_metrics["conversion"].n == n_clicks
    assert result.valid_metrics["click"].n == splits[1].n_rows


@pytest.mark.slow
def test_best_epoch_weights_are_kept(trained, splits) -> None:  # type: ignore[no-untyped-def]
    _, result = trained
    losses = [h["valid_loss"] for h in result.history]
    assert result.best_epoch == 1 + int(np.argmin(losses))
    cat, num = encode_features(splits[1].features, result.model.features)
    labels = encode_labels(splits[1].labels, result.model.tasks)
    with torch.no_grad():
        result.model.eval()
        now = task_losses(result.model(cat, num), labels, result.model.tasks)
    assert math.isclose(sum(float(v) for v in now.values()), min(losses), rel_tol=1e-5)


def test_early_stopping_stops_after_patience(splits) -> None:  # type: ignore[no-untyped-def]
    train_data, valid_data = splits
    model = build_mmoe(FEATURES, TASKS, SMALL)
    # lr this large makes validation loss worse after the first epochs
    config = TrainConfig(epochs=30, batch_size=512, lr=0.3, patience=1)
    result = train(model, train_data.take(np.arange(2000)), valid_data, config, progress=False)
    assert len(result.history) == result.best_epoch + 1 or len(result.history) == 30
    assert len(result.history) < 30


def _loss_and_grads(labels: dict[str, np.ndarray], data: RankerData) -> tuple[float, list]:  # type: ignore[type-arg]
    model = build_mmoe(FEATURES, TASKS, SMALL, seed=5)
    cat, num = encode_features(data.features, model.features)
    y = encode_labels(labels, model.tasks)
    loss = task_losses(model(cat, num), y, model.tasks)["conversion"]
    loss.backward()
    return float(loss.detach()), [p.grad.clone() for p in model.parameters() if p.grad is not None]


def test_conversion_loss_ignores_rows_without_click() -> None:
    data = make_data(500, seed=3)
    no_click = data.labels["click"] == 0
    assert no_click.sum() > 50
    flipped = dict(data.labels)
    flipped["conversion"] = np.where(
        no_click, 1.0 - data.labels["conversion"], flipped["conversion"]
    )
    loss_a, grads_a = _loss_and_grads(dict(data.labels), data)
    loss_b, grads_b = _loss_and_grads(flipped, data)
    assert loss_a == loss_b
    assert len(grads_a) == len(grads_b) > 0
    for ga, gb in zip(grads_a, grads_b, strict=True):
        assert torch.equal(ga, gb)
    # and the clicked rows do matter
    changed = dict(data.labels)
    changed["conversion"] = np.where(~no_click, 1.0 - data.labels["conversion"], 0.0)
    assert _loss_and_grads(changed, data)[0] != loss_a


def test_empty_sample_space_gives_zero_loss_and_no_gradient() -> None:
    tasks = [TaskSpec("click"), TaskSpec("cvr", "after:click")]
    z = torch.randn(8, requires_grad=True)
    labels = {"click": torch.zeros(8), "cvr": torch.ones(8)}
    loss = task_losses({"click": z, "cvr": z * 2}, labels, tasks)["cvr"]
    loss.backward()
    assert float(loss.detach()) == 0.0
    assert z.grad is not None and torch.equal(z.grad, torch.zeros(8))


@pytest.mark.slow
def test_same_seed_gives_identical_weights_other_seed_differs(splits) -> None:  # type: ignore[no-untyped-def]
    train_data = splits[0].take(np.arange(3000))
    valid_data = splits[1].take(np.arange(1000))
    config = TrainConfig(epochs=2, batch_size=256, seed=11)
    runs = [
        train(build_mmoe(FEATURES, TASKS, SMALL), train_data, valid_data, c, progress=False)
        for c in (config, config, TrainConfig(epochs=2, batch_size=256, seed=12))
    ]
    a, b, c = (r.model.state_dict() for r in runs)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert model_fingerprint(runs[0].model) == model_fingerprint(runs[1].model)
    assert model_fingerprint(runs[0].model) != model_fingerprint(runs[2].model)


def test_loss_weights_change_training(splits) -> None:  # type: ignore[no-untyped-def]
    train_data = splits[0].take(np.arange(2000))
    valid_data = splits[1].take(np.arange(500))
    base = TrainConfig(epochs=1, batch_size=256)
    weighted = TrainConfig(epochs=1, batch_size=256, loss_weights={"conversion": 0.0})
    r0 = train(build_mmoe(FEATURES, TASKS, SMALL), train_data, valid_data, base, progress=False)
    r1 = train(
        build_mmoe(FEATURES, TASKS, SMALL), train_data, valid_data, weighted, progress=False
    )
    h0, h1 = r0.history[0], r1.history[0]
    assert math.isclose(h1["valid_loss"], h1["valid_loss/click"] + h1["valid_loss/like"])
    assert model_fingerprint(r0.model) != model_fingerprint(r1.model)
    assert h0["valid_loss/conversion"] < h1["valid_loss/conversion"]


@pytest.mark.parametrize(
    ("weights", "pattern"),
    [
        (
            {"click": 1.0, "ctr": 2.0},
            r"unknown task\(s\) \['ctr'\]; valid tasks: \['click', 'like'",
        ),
        ({"like": -0.5}, r"loss_weights\['like'\] = -0.5; valid: a finite number >= 0"),
        ({"like": float("nan")}, r"loss_weights\['like'\]"),
    ],
)
def test_bad_loss_weights_raise(weights, pattern, splits) -> None:  # type: ignore[no-untyped-def]
    model = build_mmoe(FEATURES, TASKS, SMALL)
    small = splits[0].take(np.arange(10))
    with pytest.raises(ValueError, match=pattern):
        train(model, small, small, TrainConfig(loss_weights=weights), progress=False)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [({"epochs": 0}, "epochs"), ({"batch_size": 0}, "batch_size"), ({"lr": -1.0}, "lr")],
)
def test_bad_train_config_raises(kwargs, pattern) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=pattern):
        TrainConfig(**kwargs)


@pytest.mark.slow
@pytest.mark.parametrize("build", ["mmoe", "ple_esmm"])
def test_bf16_mixed_precision_trains_about_as_well_as_fp32(build: str, splits) -> None:  # type: ignore[no-untyped-def]
    from ranker import PLEConfig, build_ple

    train_data, valid_data = splits
    results = {}
    for precision in ("fp32", "bf16"):
        if build == "mmoe":
            model = build_mmoe(FEATURES, TASKS, SMALL)
        else:
            config = PLEConfig(expert_hidden=(32, 16), tower_hidden=(8,), head="esmm")
            model = build_ple(FEATURES, TASKS, config)
        config = dataclasses.replace(FAST, epochs=3, precision=precision)
        results[precision] = train(model, train_data, valid_data, config, progress=False)
    # weights stay float32; the loss is finite and the AUC within noise of fp32's
    assert all(p.dtype == torch.float32 for p in results["bf16"].model.parameters())
    for task in ("click", "like", "conversion"):
        fp32, bf16 = (results[p].valid_metrics[task].auc for p in ("fp32", "bf16"))
        assert abs(fp32 - bf16) < 0.02, (task, fp32, bf16)


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match=r"precision must be one of \['fp32', 'bf16'\]"):
        TrainConfig(precision="fp16")
