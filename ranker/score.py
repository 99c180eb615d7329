"""Scoring: per-task probabilities for rows of raw features, in batches, without gradients."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from ranker.data import encode_features
from ranker.model import MultiTaskModel

__all__ = ["PROB_CLIP", "predict", "predict_logits"]

PROB_CLIP = 1e-6
"""Probabilities are clipped to ``[PROB_CLIP, 1 - PROB_CLIP]`` so their logs are finite."""


def predict_logits(
    model: MultiTaskModel, categorical: Tensor, numeric: Tensor, batch_size: int = 8192
) -> dict[str, Tensor]:
    """Logits of every task for pre-built tensors, in eval mode, without gradients.

    The model's train/eval mode is restored afterwards.

    Args:
        model: The ranker.
        categorical: ``[n, n_cat]`` int64.
        numeric: ``[n, n_num]`` float32.
        batch_size: Rows per forward pass.

    Returns:
        Task -> ``[n]`` float32 logits.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    was_training = model.training
    model.eval()
    chunks: dict[str, list[Tensor]] = {t.name: [] for t in model.tasks}
    try:
        with torch.inference_mode():
            for start in range(0, categorical.shape[0], batch_size):
                end = start + batch_size
                out = model(categorical[start:end], numeric[start:end])  # task -> [b]
                for task, logits in out.items():
                    chunks[task].append(logits)
    finally:
        model.train(was_training)
    return {t: torch.cat(c) if c else torch.zeros(0) for t, c in chunks.items()}


def predict(
    model: MultiTaskModel, features: Mapping[str, np.ndarray], batch_size: int = 8192
) -> dict[str, np.ndarray]:
    """Per-task probabilities of rows given as raw feature arrays.

    For a task with sample space ``"after:x"`` the probability is *conditional*
    on ``x``: multiply by ``p(x)`` for the unconditional one.

    Args:
        model: The ranker.
        features: Feature name -> ``[n]`` array, exactly the model's features.
        batch_size: Rows per forward pass.

    Returns:
        Task -> ``[n]`` float64 probabilities in ``[1e-6, 1 - 1e-6]``.

    Example:
        >>> from ranker import NumericFeature, TaskSpec, build_mmoe
        >>> model = build_mmoe([NumericFeature("x")], [TaskSpec("click")])
        >>> predict(model, {"x": np.zeros(3)})["click"].shape
        (3,)
    """
    cat, num = encode_features(features, model.features)
    logits = predict_logits(model, cat, num, batch_size)
    return {
        t: np.clip(torch.sigmoid(z.double()).numpy(), PROB_CLIP, 1.0 - PROB_CLIP)
        for t, z in logits.items()
    }
