from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tuner.picks.export import ExportedWeights


def _exported(**changes: Any) -> ExportedWeights:
    kwargs: dict[str, Any] = {
        "formula": "multiplicative",
        "tasks": ("click", "like"),
        "weights": (1.0, 0.42),
        "objective": {"value": 0.03, "low": 0.02, "high": 0.04, "split": "holdout"},
        "pick": "best_trial",
        "study_name": "s1",
        "trial_number": 17,
        "data_fingerprint": "d0",
        "model_fingerprint": "m0",
        "created_at": "2026-01-02T03:04:05+00:00",
        "extra": {"metric:click": 0.1},
    }
    kwargs.update(changes)
    return ExportedWeights(**kwargs)


def test_json_round_trip_and_file(tmp_path: Path) -> None:
    e = _exported()
    data = json.loads(e.to_json())
    assert data["weights"] == {"click": 1.0, "like": 0.42}
    assert ExportedWeights.from_json(e.to_json()) == e
    path = e.write(tmp_path / "w.json")
    assert ExportedWeights.read(path) == e
    assert [p.name for p in tmp_path.iterdir()] == ["w.json"]  # no temporary left
    with pytest.raises(FileNotFoundError, match="nope.json"):
        ExportedWeights.read(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("changes", "pattern"),
    [
        ({"weights": (1.0,)}, "'weights' has 1 values for 2 tasks"),
        ({"weights": (1.0, float("nan"))}, "'weights' has nan for task 'like'"),
        ({"pick": "best"}, "'pick' is 'best'"),
        ({"pick": "strategy"}, "'trial_number' must be null"),
        ({"trial_number": None}, "'trial_number' must be an integer"),
        ({"objective": {"value": 1.0, "low": 0, "high": 2, "split": "train"}}, "split"),
        ({"objective": {"value": 1.0}}, "'objective' has keys"),
        ({"created_at": "2026-01-02T03:04:05"}, "must be in UTC"),
    ],
)
def test_validation(changes: dict[str, Any], pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        _exported(**changes)


@pytest.mark.parametrize(
    ("edit", "pattern"),
    [
        (lambda d: d.update(colour="red"), r"unknown fields \['colour'\]"),
        (lambda d: d.pop("formula"), r"missing fields \['formula'\]"),
        (lambda d: d["weights"].pop("like"), "'weights' has tasks"),
        (lambda d: d["weights"].update(like="x"), "'weights.like' is 'x'"),
    ],
)
def test_from_json_names_the_field(edit: Any, pattern: str) -> None:
    data = json.loads(_exported().to_json())
    edit(data)
    with pytest.raises(ValueError, match=pattern):
        ExportedWeights.from_json(json.dumps(data))
