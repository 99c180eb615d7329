from __future__ import annotations

import numpy as np
import pytest

from tuner.space import FusionSpace


def test_round_trips() -> None:
    space = FusionSpace(("click", "like", "follow"), pinned="like", low=0.0, high=3.0)
    assert space.free_tasks == ("click", "follow")
    assert space.dim == 2
    assert space.param_names == ("w_click", "w_follow")
    assert set(space.distributions()) == set(space.param_names)
    w = space.to_weights({"w_click": 0.5, "w_follow": 2.0})
    np.testing.assert_array_equal(w, [0.5, 1.0, 2.0])
    X = np.array([[0.5, 2.0], [1.0, 3.0]])
    np.testing.assert_array_equal(space.matrix_to_weights(X), [[0.5, 1, 2.0], [1.0, 1, 3.0]])
    np.testing.assert_array_equal(space.from_params(space.to_params(X[0])), X[0])
    np.testing.assert_allclose(space.from_weights(2 * w), [0.5, 2.0])
    np.testing.assert_array_equal(space.clip([[-1.0, 5.0]]), [[0.0, 3.0]])
    assert FusionSpace.from_dict(space.to_dict()) == space


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"tasks": ("a", "b"), "pinned": "c"}, r"pinned 'c' is not a task; valid: \['a', 'b'\]"),
        ({"tasks": ("a", "b"), "pinned": "a", "low": 2.0, "high": 1.0}, "need finite low < high"),
        ({"tasks": ("a", "b", "a"), "pinned": "a"}, r"repeats \['a'\]"),
        ({"tasks": ("a",), "pinned": "a"}, "at least 2 tasks"),
    ],
)
def test_validation(kwargs: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        FusionSpace(**kwargs)


def test_shape_errors_name_the_free_tasks() -> None:
    space = FusionSpace(("a", "b", "c"), pinned="a")
    with pytest.raises(ValueError, match=r"need \[M, 2\]"):
        space.matrix_to_weights(np.zeros((3, 3)))
    with pytest.raises(KeyError, match="w_c"):
        space.to_weights({"w_b": 1.0})
