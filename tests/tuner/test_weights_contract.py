"""The exported weights file as a serving contract: its JSON Schema, its test vectors,
its versions (older files read, newer minors' unknown fields ignored, newer majors
refused) and its file mode.

The vectors (``tuner/picks/weights.vectors.json``) are regenerated after a deliberate
change of a formula with
``python -c "from tests.tuner.test_weights_contract import write_vectors; write_vectors()"``.
"""

from __future__ import annotations

import json
import os
import stat
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest

from simulator.fusion import FUSIONS, AdditiveFusion, BaseFusion, MultiplicativeFusion, RankFusion
from tuner.picks.export import FILE_PICKS, SCHEMA_VERSION, ExportedWeights

SCHEMA = json.loads(resources.files("tuner.picks").joinpath("weights.schema.json").read_text())
VECTORS_FILE = "weights.vectors.json"
TASKS = ["click", "like", "conversion"]
# one request of 6 candidates: a zero and a one (clipped), and a tie in 'like' (rank order)
SCORES = [[0.30, 0.20, 0.010], [0.05, 0.60, 0.020], [0.90, 0.20, 0.0],
          [0.12, 0.35, 1.0], [0.50, 0.05, 0.004], [0.20, 0.40, 0.050]]
CASES: list[tuple[BaseFusion, list[float]]] = [
    (MultiplicativeFusion(), [1.0, 0.5, 2.0]),
    (AdditiveFusion("log"), [1.0, 0.5, 2.0]),
    (AdditiveFusion("identity"), [1.0, -0.5, 3.0]),
    (AdditiveFusion("logit"), [1.0, 0.8, 0.3]),
    (AdditiveFusion("sqrt"), [1.0, 2.0, 0.5]),
    (RankFusion(), [1.0, 0.7, 2.0]),
    (RankFusion(c=1.0), [1.0, 0.7, 2.0]),
]


def _exported(**changes: Any) -> ExportedWeights:
    kwargs: dict[str, Any] = {
        "formula": "multiplicative", "tasks": ("click", "like"), "weights": (1.0, 0.42),
        "objective": {"value": 0.03, "low": 0.02, "high": 0.04, "split": "holdout"},
        "pick": "best_trial", "study_name": "s1", "trial_number": 17,
        "data_fingerprint": "d0", "model_fingerprint": "m0",
        "created_at": "2026-01-02T03:04:05+00:00", "extra": {"metric:click": 0.1},
        "fusion": {**MultiplicativeFusion().describe(), "pinned": "click"},
    }
    kwargs.update(changes)
    return ExportedWeights(**kwargs)


def vectors() -> dict[str, Any]:
    """The test vectors as simulator.fusion computes them (float32, as served here)."""
    cases = []
    for fusion, weights in CASES:
        fused = fusion.fuse(fusion.transform(np.array([SCORES])), np.array([weights]))[0, 0]
        order = np.argsort(-fused, kind="stable")
        assert len(set(fused.tolist())) == len(fused), "a tie would leave the order open"
        cases.append({"fusion": fusion.describe(), "tasks": TASKS,
                      "weights": dict(zip(TASKS, weights, strict=True)),
                      "scores": [dict(zip(TASKS, row, strict=True)) for row in SCORES],
                      "fused": [float(x) for x in fused], "order": order.tolist()})
    return {
        "description": "Per case: one request's candidates with their per-task scores p_k; "
                       "fused: each candidate's fusion.score with these weights; order: the "
                       "candidates' indices, highest fused score first. fusiontune computes "
                       "in float32: compare fused with a relative tolerance of rtol (plus "
                       "atol); order must match exactly.",
        "schema_version": SCHEMA_VERSION, "rtol": 1e-5, "atol": 1e-6, "cases": cases,
    }


def write_vectors() -> None:
    path = Path(str(resources.files("tuner.picks").joinpath(VECTORS_FILE)))
    path.write_text(json.dumps(vectors(), indent=2) + "\n", encoding="utf-8")


def test_shipped_vectors_are_those_simulator_fusion_computes() -> None:
    shipped = json.loads(resources.files("tuner.picks").joinpath(VECTORS_FILE).read_text())
    expected = vectors()
    assert {k: v for k, v in shipped.items() if k != "cases"} == \
        {k: v for k, v in expected.items() if k != "cases"}
    assert len(shipped["cases"]) == len(expected["cases"])
    for got, want in zip(shipped["cases"], expected["cases"], strict=True):
        assert {k: v for k, v in got.items() if k != "fused"} == \
            {k: v for k, v in want.items() if k != "fused"}
        np.testing.assert_allclose(got["fused"], want["fused"], rtol=1e-6)
    assert {c["fusion"]["formula"] for c in shipped["cases"]} == set(FUSIONS)


def test_vectors_follow_the_written_out_formula() -> None:
    """The ``fusion`` block is enough: the vectors recomputed in float64 from its text's
    parameters alone (no simulator.fusion) agree, as another language's scorer would."""
    data = json.loads(resources.files("tuner.picks").joinpath(VECTORS_FILE).read_text())
    for case in data["cases"]:
        f, tasks = case["fusion"], case["tasks"]
        p = np.array([[row[t] for t in tasks] for row in case["scores"]], dtype=np.float64)
        w = np.array([case["weights"][t] for t in tasks])
        if f["formula"] == "rank":
            ranks = np.empty_like(p)
            for k in range(p.shape[1]):
                ranks[np.argsort(-p[:, k], kind="stable"), k] = np.arange(1, len(p) + 1)
            x = 1.0 / (f["c"] + ranks)
        else:
            q = np.clip(p, f["clip_low"], f["clip_high"]) if (
                f["clip_low"] is not None or f["clip_high"] is not None) else p
            x = {"log": np.log, "identity": lambda q: q, "sqrt": np.sqrt,
                 "logit": lambda q: np.log(q) - np.log(1 - q)}[f["transform"]](q)
        fused = x @ w
        np.testing.assert_allclose(fused, case["fused"], rtol=data["rtol"], atol=data["atol"])
        assert np.argsort(-fused, kind="stable").tolist() == case["order"]


def test_schema_lists_every_formula_and_pick() -> None:
    assert set(SCHEMA["properties"]["formula"]["enum"]) == set(FUSIONS)
    assert set(SCHEMA["properties"]["fusion"]["properties"]["formula"]["enum"]) == set(FUSIONS)
    assert tuple(SCHEMA["properties"]["pick"]["enum"]) == FILE_PICKS
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("fusion", [MultiplicativeFusion(), AdditiveFusion("logit"),
                                    RankFusion(c=30.0)], ids=lambda f: f.name)
@pytest.mark.parametrize(("pick", "number"), [("strategy", None), ("trial", 3),
                                              ("control", None)])
def test_exported_files_validate_against_the_schema(fusion: BaseFusion, pick: str,
                                                    number: int | None) -> None:
    e = _exported(formula=fusion.name, fusion={**fusion.describe(), "pinned": "like"},
                  pick=pick, trial_number=number)
    data = json.loads(e.to_json())
    jsonschema.validate(data, SCHEMA)
    assert data["schema_version"] == SCHEMA_VERSION == "1.0"
    assert data["fusion"] == {**fusion.describe(), "pinned": "like"}
    bad = {**data, "trial_number": None if number is not None else 1}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SCHEMA)


def test_a_pre_versioned_file_is_read_with_the_formula_defaults() -> None:
    """A file written before schema_version (no ``fusion`` block, pick ``cem_mean``)."""
    data = json.loads(_exported(pick="strategy", trial_number=None).to_json())
    del data["schema_version"], data["fusion"]
    data["pick"] = "cem_mean"
    e = ExportedWeights.from_json(json.dumps(data))
    assert e.pick == "strategy"
    assert e.fusion == {**MultiplicativeFusion().describe(), "pinned": None}
    jsonschema.validate(json.loads(e.to_json()), SCHEMA)  # rewritten as the current version
    data["fusion"] = e.fusion  # a fusion block is no field of the pre-versioned format
    with pytest.raises(ValueError, match=r"unknown fields \['fusion'\]"):
        ExportedWeights.from_json(json.dumps(data))


def test_a_newer_minor_version_is_read_ignoring_unknown_fields() -> None:
    e = _exported()
    data = json.loads(e.to_json())
    newer = {**data, "schema_version": "1.7", "serving_hint": {"cache_s": 60},
             "objective": {**data["objective"], "sd": 0.01}}
    assert ExportedWeights.from_json(json.dumps(newer)) == e
    same = {**data, "serving_hint": 1}  # this version's own file: a typo is refused
    with pytest.raises(ValueError, match=r"unknown fields \['serving_hint'\]"):
        ExportedWeights.from_json(json.dumps(same))


@pytest.mark.parametrize("version", ["2.0", "0.9", "1", "v1.0", 1.0])
def test_a_newer_major_or_malformed_version_is_refused(version: Any) -> None:
    data = {**json.loads(_exported().to_json()), "schema_version": version}
    with pytest.raises(ValueError, match=r"'schema_version' is .*reads versions 1\.0 to 1\.x"):
        ExportedWeights.from_json(json.dumps(data))


@pytest.mark.parametrize(("fusion", "pattern"), [
    ({**RankFusion().describe(), "pinned": None}, "'fusion.formula' is 'rank'"),
    ({**MultiplicativeFusion().describe(), "pinned": "hate"}, "'fusion.pinned' is 'hate'"),
    ({"formula": "multiplicative", "pinned": None}, "'fusion.score'"),
])
def test_a_bad_fusion_block_is_named(fusion: dict[str, Any], pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        _exported(fusion=fusion)


def test_file_mode_follows_the_umask_and_overwrite_can_be_refused(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = _exported().write(tmp_path / "w.json")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    with pytest.raises(FileExistsError, match="w.json"):
        _exported(study_name="s2").write(path, overwrite=False)
    assert ExportedWeights.read(path).study_name == "s1"


def test_schema_and_vectors_are_package_data() -> None:
    """pyproject ships both files in the wheel (an editable install would hide a miss)."""
    import tomllib

    root = Path(__file__).resolve().parents[2]
    data = tomllib.loads((root / "pyproject.toml").read_text())
    shipped = data["tool"]["setuptools"]["package-data"]["tuner.picks"]
    assert sorted(shipped) == ["weights.schema.json", VECTORS_FILE]
    assert all((root / "tuner" / "picks" / name).is_file() for name in shipped)
