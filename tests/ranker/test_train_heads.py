"""train() optimises what the heads define: entire-space losses for ESMM, BCE for towers."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ranker import TrainConfig, build_mmoe, train
from ranker.data import encode_features, encode_labels
from ranker.losses import task_losses
from ranker.score import predict_logits
from tests.ranker.synth import FEATURES, SMALL, TASKS, make_data


@pytest.mark.parametrize("head", ["towers", "esmm"])
def test_validation_loss_is_the_heads_loss(head: str) -> None:
    model = build_mmoe(FEATURES, TASKS, dataclasses.replace(SMALL, head=head), seed=0)
    valid = make_data(600, seed=2)
    result = train(model, make_data(1500, seed=1), valid,
                   TrainConfig(epochs=1, batch_size=256, seed=0), progress=False)
    cat, num = encode_features(valid.features, model.features)
    labels = encode_labels(valid.labels, model.tasks)
    logits = predict_logits(model, cat, num, 8192)
    with torch.no_grad():
        heads = {t: float(v) for t, v in model.losses(logits, labels).items()}
        plain = {t: float(v) for t, v in task_losses(logits, labels, model.tasks).items()}
    recorded = result.history[result.best_epoch - 1]
    assert recorded["valid_loss/conversion"] == pytest.approx(heads["conversion"], rel=1e-5)
    if head == "towers":
        assert heads == pytest.approx(plain)
    else:
        # ESMM supervises pCTCVR over all impressions, not pCVR over clicks
        assert heads["conversion"] != pytest.approx(plain["conversion"], rel=1e-3)
