from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ranker import (
    CheckpointError,
    TrainConfig,
    build_mmoe,
    load_checkpoint,
    model_fingerprint,
    predict,
    save_checkpoint,
    train,
)
from tests.ranker.synth import FEATURES, SMALL, TASKS, make_data


def test_round_trip_gives_identical_predictions_and_fingerprint(tmp_path: Path) -> None:
    data = make_data(1500, seed=0)
    model = build_mmoe(FEATURES, TASKS, SMALL)
    result = train(model, data, data.take(np.arange(300)), TrainConfig(epochs=1), progress=False)
    meta = {"data": "abc123", "metrics": result.valid_metrics, "nan": float("nan")}
    path = tmp_path / "ranker.pt"
    fp = save_checkpoint(path, model, meta)
    assert fp == model_fingerprint(model) and len(fp) == 16
    assert [p.name for p in tmp_path.iterdir()] == ["ranker.pt"]  # no temp file left

    loaded, loaded_meta = load_checkpoint(path)
    assert model_fingerprint(loaded) == fp
    assert loaded.spec == model.spec
    before, after = predict(model, data.features), predict(loaded, data.features)
    for task in before:
        np.testing.assert_array_equal(before[task], after[task])
    assert loaded_meta["data"] == "abc123"
    assert loaded_meta["metrics"]["click"]["n"] == result.valid_metrics["click"].n
    assert math.isnan(loaded_meta["nan"])
    # the numeric standardization travels with the weights
    assert torch.equal(loaded.embedding.numeric_mean, model.embedding.numeric_mean)
    assert bool(loaded.embedding.numeric_fitted)


def test_fingerprint_changes_with_weights() -> None:
    model = build_mmoe(FEATURES, TASKS, SMALL)
    fp = model_fingerprint(model)
    with torch.no_grad():
        next(model.parameters())[0, 0] += 1e-3
    assert model_fingerprint(model) != fp


def test_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nope.pt"
    with pytest.raises(CheckpointError, match=r"nope\.pt does not exist"):
        load_checkpoint(path)


def test_corrupt_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"bad\.pt is unreadable or corrupt"):
        load_checkpoint(path)


def test_tampered_weights_are_detected(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    save_checkpoint(path, build_mmoe(FEATURES, TASKS, SMALL), {})
    payload = torch.load(path, weights_only=True)
    key = next(iter(payload["state_dict"]))
    payload["state_dict"][key] = payload["state_dict"][key] + 1
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="fingerprint"):
        load_checkpoint(path)


def test_meta_that_is_not_json_like_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    with pytest.raises(ValueError, match=r"meta\['obj'\] is a object"):
        save_checkpoint(path, build_mmoe(FEATURES, TASKS, SMALL), {"obj": object()})
    assert not path.exists()
