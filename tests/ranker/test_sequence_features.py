"""Pooled multi-valued (sequence) features: pooling, shared tables, encoding, training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ranker import (
    CategoricalFeature,
    FeatureEmbedding,
    FeatureSpec,
    MMoEConfig,
    NumericFeature,
    RankerData,
    SequenceFeature,
    TaskSpec,
    TrainConfig,
    build_mmoe,
    build_ple,
    encode_features,
    evaluate,
    load_checkpoint,
    predict,
    save_checkpoint,
    train,
)
from ranker.configs import PLEConfig
from ranker.features import pool_sequence, validate_features

EMB = torch.tensor(
    [
        [[1.0, -2.0], [3.0, 4.0], [100.0, 100.0]],  # last entry is padding
        [[5.0, 6.0], [-1.0, 0.0], [2.0, 8.0]],  # all real
        [[7.0, 7.0], [9.0, 9.0], [9.0, 9.0]],  # all padding
    ]
)
MASK = torch.tensor([[True, True, False], [True, True, True], [False, False, False]])


@pytest.mark.parametrize(
    ("pooling", "expected"),
    [
        ("sum", [[4.0, 2.0], [6.0, 14.0], [0.0, 0.0]]),
        ("mean", [[2.0, 1.0], [2.0, 14.0 / 3.0], [0.0, 0.0]]),
        ("max", [[3.0, 4.0], [5.0, 8.0], [0.0, 0.0]]),
    ],
)
def test_pooling_ignores_padding_and_gives_zeros_without_entries(
    pooling: str, expected: list[list[float]]
) -> None:
    emb = EMB.clone().requires_grad_(True)
    out = pool_sequence(emb, MASK, pooling)
    torch.testing.assert_close(out, torch.tensor(expected))
    out.sum().backward()
    assert emb.grad is not None and torch.isfinite(emb.grad).all()
    assert (emb.grad[~MASK] == 0).all()  # padding gets no gradient


def _specs(pooling: str = "mean", shares: str | None = "item") -> list[FeatureSpec]:
    return [
        CategoricalFeature("item", vocab_size=5, dim=3),
        SequenceFeature("hist", vocab_size=5, length=4, dim=3, pooling=pooling, shares=shares),
        NumericFeature("x"),
    ]


def test_embedding_pools_the_shared_table_with_oov_and_padding() -> None:
    emb = FeatureEmbedding(_specs())
    table = emb.tables[0].weight  # the item table, row 5 is OOV
    ids = torch.tensor([[2, 1, 3, -1, -1], [0, -1, -1, -1, -1], [4, 9, 1, 1, -1]])
    out = emb(ids, torch.zeros(3, 1))
    assert out.shape == (3, 3 + 3 + 1)
    with torch.no_grad():
        torch.testing.assert_close(out[:, :3], table[[2, 0, 4]])
        torch.testing.assert_close(out[0, 3:6], table[[1, 3]].mean(0))
        torch.testing.assert_close(out[1, 3:6], torch.zeros(3))  # all padding
        torch.testing.assert_close(out[2, 3:6], table[[5, 1, 1]].mean(0))  # 9 -> OOV row
    # sharing adds no table: item's (5 + 1) x 3 rows are all the embedding's weights
    assert sum(p.numel() for p in emb.parameters()) == 6 * 3
    assert len(emb.sequence_tables) == 0
    own = FeatureEmbedding(_specs(shares=None))
    assert sum(p.numel() for p in own.parameters()) == 2 * 6 * 3


def test_shared_table_gets_gradients_from_the_history() -> None:
    emb = FeatureEmbedding(_specs())
    ids = torch.tensor([[0, 3, -1, -1, -1]])  # candidate 0, history [3]
    emb(ids, torch.zeros(1, 1)).sum().backward()
    grad = emb.tables[0].weight.grad
    assert grad is not None
    assert grad[[0, 3]].abs().sum() > 0 and grad[[1, 2, 4, 5]].abs().sum() == 0


def test_encode_features_appends_sequence_columns_after_categoricals() -> None:
    hist = np.array([[1, 2, -1, -1], [-1, -1, -1, -1]])
    feats = {"item": np.array([4, 0]), "hist": hist, "x": np.array([0.5, 1.0])}
    ids, num = encode_features(feats, _specs())
    assert ids.dtype == torch.int64 and ids.shape == (2, 1 + 4)
    assert ids.tolist() == [[4, 1, 2, -1, -1], [0, -1, -1, -1, -1]]
    assert num.shape == (2, 1)


@pytest.mark.parametrize(
    ("hist", "pattern"),
    [
        (np.zeros((2, 3), np.int64), r"'hist' has shape \(2, 3\); expected \(2, 4\)"),
        (np.zeros(2, np.int64), r"'hist' has shape \(2,\); expected \(2, 4\)"),
        (np.zeros((2, 4)), r"'hist' has dtype float64; valid: integer ids"),
    ],
)
def test_bad_sequence_arrays_are_named(hist: np.ndarray, pattern: str) -> None:
    feats = {"item": np.array([4, 0]), "hist": hist, "x": np.array([0.5, 1.0])}
    with pytest.raises(ValueError, match=pattern):
        encode_features(feats, _specs())


def test_a_2d_array_for_a_1d_feature_is_refused() -> None:
    feats = {"item": np.zeros((2, 2), np.int64), "hist": np.zeros((2, 4), np.int64),
             "x": np.zeros(2)}
    with pytest.raises(ValueError, match=r"'item' has shape \(2, 2\).*SequenceFeature"):
        encode_features(feats, _specs())


@pytest.mark.parametrize(
    ("specs", "pattern"),
    [
        ([SequenceFeature("h", 5, 2, shares="nope")], r"shares 'nope'.*not a categorical"),
        (
            [CategoricalFeature("c", 5, 4), SequenceFeature("h", 5, 2, dim=3, shares="c")],
            r"\(vocab_size, dim\) \(5, 3\); the shared table has \(5, 4\)",
        ),
    ],
)
def test_bad_sharing_is_refused(specs: list[FeatureSpec], pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        validate_features(specs)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"pooling": "median"}, r"pooling 'median' unknown; valid: \['mean', 'sum', 'max'\]"),
        ({"length": 0}, r"length must be an int >= 1"),
        ({"vocab_size": -1}, r"vocab_size must be an int >= 1"),
    ],
)
def test_bad_sequence_spec_is_refused(kwargs: dict[str, object], pattern: str) -> None:
    args: dict[str, object] = {"name": "h", "vocab_size": 5, "length": 2, **kwargs}
    with pytest.raises(ValueError, match=pattern):
        SequenceFeature(**args)  # type: ignore[arg-type]


def _history_world(n: int, seed: int) -> RankerData:
    """Clicks depend only on the *history*: on how many liked items it holds."""
    rng = np.random.default_rng(seed)
    liked = np.arange(30) < 10  # items 0..9 are liked
    length = rng.integers(0, 7, n)  # 0..6 real entries of 6
    hist = rng.integers(0, 30, (n, 6))
    hist[np.arange(6)[None, :] >= length[:, None]] = -1
    share = (liked[np.maximum(hist, 0)] & (hist >= 0)).sum(1) / np.maximum(length, 1)
    click = (rng.random(n) < 0.1 + 0.8 * share).astype(np.float32)
    item = rng.integers(0, 30, n)
    return RankerData({"item": item, "hist": hist, "x": rng.normal(size=n)}, {"click": click})


@pytest.mark.slow
@pytest.mark.parametrize("pooling", ["mean", "sum", "max"])
def test_models_learn_from_a_history_feature(pooling: str) -> None:
    specs: list[FeatureSpec] = [
        CategoricalFeature("item", 30, 4),
        SequenceFeature("hist", 30, 6, 4, pooling, shares="item"),
        NumericFeature("x"),
    ]
    tasks = [TaskSpec("click")]
    train_rows, test_rows = _history_world(4000, 0), _history_world(2000, 1)
    config = TrainConfig(epochs=4, batch_size=128, lr=1e-2)
    small = MMoEConfig(n_experts=2, expert_hidden=(16, 8), tower_hidden=(8,))
    model = build_mmoe(specs, tasks, small, seed=0)
    train(model, train_rows, test_rows, config, progress=False)
    # the item and x carry nothing: only the pooled history can beat chance
    assert evaluate(model, test_rows)["click"].auc > 0.7
    ple = build_ple(specs, tasks, PLEConfig(expert_hidden=(16, 8), tower_hidden=(8,)), seed=0)
    train(ple, train_rows, test_rows, config, progress=False)
    assert evaluate(ple, test_rows)["click"].auc > 0.7


def test_checkpoint_round_trip_keeps_sequence_specs_and_scores(tmp_path: Path) -> None:
    model = build_mmoe(_specs("max"), [TaskSpec("click")], MMoEConfig(n_experts=2))
    feats = {
        "item": np.array([4, 0, 2]),
        "hist": np.array([[1, 2, -1, -1], [-1, -1, -1, -1], [7, 0, 0, 3]]),
        "x": np.array([0.5, 1.0, 2.0]),
    }
    save_checkpoint(tmp_path / "m.pt", model, {})
    loaded, _ = load_checkpoint(tmp_path / "m.pt")
    assert loaded.spec == model.spec
    np.testing.assert_array_equal(predict(model, feats)["click"], predict(loaded, feats)["click"])


def test_grouped_lookups_equal_per_table_embedding() -> None:
    specs: list[FeatureSpec] = [
        CategoricalFeature("a", 7, 3),
        CategoricalFeature("b", 4, 3),  # a, b: one run of width 3
        CategoricalFeature("c", 5, 2),  # alone
        CategoricalFeature("d", 9, 3),  # a run of one again
        SequenceFeature("h", 4, 3, 3, "sum", shares="b"),
    ]
    emb = FeatureEmbedding(specs)
    assert emb._runs == [(0, 2), (2, 3), (3, 4)]
    ids = torch.tensor([[0, 3, 4, 8, 1, -1, 2], [6, 99, -5, 0, 3, 3, -1]])
    out = emb(ids, torch.zeros(2, 0))
    clipped = [torch.where((ids[:, j] >= 0) & (ids[:, j] < f.vocab_size), ids[:, j],
                           f.vocab_size) for j, f in enumerate(specs[:4])]
    ref = torch.cat([t(c) for t, c in zip(emb.tables, clipped, strict=True)], 1)
    torch.testing.assert_close(out[:, :11], ref)
    b = emb.tables[1].weight
    torch.testing.assert_close(out[:, 11:], torch.stack([b[1] + b[2], b[3] + b[3]]))
    out.sum().backward()
    # gradients reach each table's own rows only
    a_grad = emb.tables[0].weight.grad
    assert a_grad is not None
    assert a_grad[[0, 6]].abs().sum() > 0 and a_grad[[1, 2, 3, 4, 5, 7]].abs().sum() == 0
