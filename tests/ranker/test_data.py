from __future__ import annotations

import numpy as np
import pytest

from ranker import RankerData, TrainConfig, build_mmoe, evaluate, predict, train
from tests.ranker.synth import FEATURES, SMALL, TASKS, make_data


def test_unknown_feature_is_named_with_valid_ones() -> None:
    data = make_data(20, 0)
    model = build_mmoe(FEATURES, TASKS, SMALL)
    bad = {**data.features, "colour": np.zeros(20)}
    with pytest.raises(ValueError, match=r"unknown feature\(s\) \['colour'\].*'user', 'item'"):
        predict(model, bad)


def test_missing_feature_is_named() -> None:
    data = make_data(20, 0)
    model = build_mmoe(FEATURES, TASKS, SMALL)
    feats = {k: v for k, v in data.features.items() if k != "price"}
    with pytest.raises(ValueError, match=r"missing feature\(s\) \['price'\]"):
        predict(model, feats)


def test_missing_label_is_named_with_the_tasks() -> None:
    data = make_data(20, 0)
    model = build_mmoe(FEATURES, TASKS, SMALL)
    labels = {k: v for k, v in data.labels.items() if k != "like"}
    with pytest.raises(ValueError, match=r"missing label\(s\) \['like'\].*'click', 'like'"):
        evaluate(model, RankerData(data.features, labels))
    with pytest.raises(ValueError, match=r"missing label\(s\) \['like'\]"):
        train(model, RankerData(data.features, labels), data, TrainConfig(), progress=False)


@pytest.mark.parametrize(
    ("features", "labels", "pattern"),
    [
        ({}, {"like": np.full(20, 2.0)}, r"label 'like' has value 2\.0 at row 0; valid: \[0, 1\]"),
        ({}, {"click": np.full(20, 0.5)}, r"label 'click' defines a sample space"),
        ({}, {"nope": np.zeros(20)}, r"unknown label\(s\) \['nope'\]"),
        ({"item": np.full(20, 1.5)}, {}, r"categorical feature 'item' has dtype float64"),
        ({"x0": np.r_[np.zeros(19), np.nan]}, {}, r"'x0' has a non-finite value at row 19"),
    ],
)
def test_bad_values_raise_value_error_naming_them(features, labels, pattern) -> None:  # type: ignore[no-untyped-def]
    data = make_data(20, 0)
    model = build_mmoe(FEATURES, TASKS, SMALL)
    bad = RankerData({**data.features, **features}, {**data.labels, **labels})
    with pytest.raises(ValueError, match=pattern):
        evaluate(model, bad)


def test_ranker_data_checks_lengths_and_shapes() -> None:
    with pytest.raises(ValueError, match=r"feature 'b' has 2 rows, other arrays have 3"):
        RankerData({"a": np.zeros(3), "b": np.zeros(2)})
    with pytest.raises(ValueError, match=r"label 'click' has 4 rows"):
        RankerData({"a": np.zeros(3)}, {"click": np.zeros(4)})
    with pytest.raises(ValueError, match=r"feature 'a': expected a 1-D or \[n, L\] array"):
        RankerData({"a": np.zeros((3, 2, 2))})
    with pytest.raises(ValueError, match=r"label 'click': expected a 1-D array"):
        RankerData({"a": np.zeros((3, 2))}, {"click": np.zeros((3, 2))})
    assert RankerData({"seq": np.zeros((3, 2), np.int64)}).take(np.array([2])).n_rows == 1


def test_take_selects_rows_of_features_and_labels() -> None:
    data = make_data(10, 0)
    sub = data.take(np.array([2, 5]))
    assert sub.n_rows == 2
    np.testing.assert_array_equal(sub.labels["click"], data.labels["click"][[2, 5]])
