from __future__ import annotations

import numpy as np
import pytest
import torch

from ranker import (
    CategoricalFeature,
    MMoE,
    MMoEConfig,
    NumericFeature,
    TaskSpec,
    build_mmoe,
    encode_features,
    predict,
)
from tests.ranker.synth import FEATURES, SMALL, TASKS, make_data


def test_forward_returns_logits_keyed_by_task_with_batch_shape() -> None:
    model = build_mmoe(FEATURES, TASKS, SMALL)
    data = make_data(7, seed=0)
    cat, num = encode_features(data.features, model.features)
    out = model(cat, num)
    assert list(out) == ["click", "like", "conversion"]
    for logits in out.values():
        assert logits.shape == (7,)
        assert logits.dtype == torch.float32


def test_predict_gives_clipped_float64_probabilities() -> None:
    model = build_mmoe(FEATURES, TASKS, SMALL)
    probs = predict(model, make_data(50, seed=0).features, batch_size=16)
    assert set(probs) == {"click", "like", "conversion"}
    for p in probs.values():
        assert p.dtype == np.float64 and p.shape == (50,)
        assert ((p >= 1e-6) & (p <= 1 - 1e-6)).all()


def test_out_of_vocabulary_ids_share_one_row() -> None:
    model = build_mmoe([CategoricalFeature("item", 5, 3)], [TaskSpec("click")], SMALL)
    ids = np.array([5, 99, -1, 4, 0])
    p = predict(model, {"item": ids})["click"]
    assert p[0] == p[1] == p[2]
    assert p[3] != p[0] and p[4] != p[0]


def test_build_is_seeded_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(7)
    before = torch.rand(1)
    torch.manual_seed(7)
    a = build_mmoe(FEATURES, TASKS, SMALL, seed=3)
    after = torch.rand(1)
    b = build_mmoe(FEATURES, TASKS, SMALL, seed=3)
    assert torch.equal(before, after)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k


def test_shared_parameters_are_embeddings_and_experts() -> None:
    model = build_mmoe(FEATURES, TASKS, SMALL)
    shared = {id(p) for p in model.shared_parameters()}
    assert {id(p) for p in model.embedding.parameters()} <= shared
    assert isinstance(model.backbone, MMoE)
    assert {id(p) for p in model.backbone.experts.parameters()} <= shared
    assert not {id(p) for p in model.heads.parameters()} & shared


@pytest.mark.parametrize(
    ("make", "pattern"),
    [
        (
            lambda: build_mmoe(FEATURES, [TaskSpec("click"), TaskSpec("cvr", "after:nope")]),
            r"after:nope.*valid.*'after:click'",
        ),
        (lambda: TaskSpec("cvr", "before:click"), r"bad sample_space 'before:click'.*after:"),
        (lambda: TaskSpec("cvr", "after:cvr"), r"names the task itself"),
        (
            lambda: build_mmoe(FEATURES, [TaskSpec("a", "after:b"), TaskSpec("b", "after:a")]),
            r"cycle",
        ),
        (
            lambda: build_mmoe(FEATURES, [TaskSpec("click"), TaskSpec("click")]),
            r"duplicate task names \['click'\]",
        ),
        (lambda: build_mmoe(FEATURES, []), r"at least one TaskSpec"),
        (lambda: TaskSpec("bad.name"), r"bad task name 'bad.name'"),
        (lambda: CategoricalFeature("item", 0), r"'item': vocab_size must be"),
        (
            lambda: build_mmoe([NumericFeature("x"), NumericFeature("x")], TASKS),
            r"duplicate feature names \['x'\]",
        ),
        (lambda: MMoEConfig(n_experts=0), r"n_experts"),
        (lambda: MMoEConfig(dropout=1.0), r"dropout"),
    ],
)
def test_bad_specs_raise_value_error_naming_the_problem(make, pattern) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=pattern):
        make()
