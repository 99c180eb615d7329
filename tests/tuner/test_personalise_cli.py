"""``search personalise``: round trip, bad input, a faithful export, an unbiased held-out
estimate and a guard that refuses where features carry no taste."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import optuna
import pytest
from click.testing import CliRunner, Result

from simulator.estimators import SNIPS, SlateFeedback
from tests.tuner.conftest import DemoFiles
from tests.worldkit import FUSION, OBJECTIVE_WEIGHTS, TASKS, WorldLog, make_log
from tuner.cli import main
from tuner.evaluation.search_data import SearchSettings, Workspace, split_log
from tuner.segments import guard, request_feature
from tuner.segments._export import with_guardrails
from tuner.segments._export_model import write_export
from tuner.segments._learned import LearnedWeights, LogArrays, WeightModelConfig
from tuner.segments._learned import train_weight_model as train
from tuner.segments._personalise import LearnedEvaluation, evaluate_learned
from tuner.segments._replay import per_request_estimate

torch = pytest.importorskip("torch")
FEATURES = "user_activity,user_segment"
OBJ = np.array([OBJECTIVE_WEIGHTS[t] for t in TASKS], dtype=np.float32)
BASE = np.array([1.0, 0.8, 2.0])
QUICK = ["--epochs", "15", "--patience", "5", "--no-progress"]


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _personalise(db: Path, *args: str) -> Result:
    return _invoke("search", "personalise", "--storage", str(db), "--study", "s", *args)


@pytest.fixture(scope="module")
def study_db(demo_files: DemoFiles, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished global study 's' (2 rounds x 8) on the demo log."""
    db = tmp_path_factory.mktemp("personalise") / "s.db"
    run = CliRunner().invoke(main, demo_files.new_study_args(db), catch_exceptions=False)
    assert run.exit_code == 0, run.output
    return db


def _copy(db: Path, tmp_path: Path) -> Path:
    mine = tmp_path / "s.db"
    shutil.copy(db, mine)
    return mine


def _names(db: Path) -> list[str]:
    return optuna.get_all_study_names(f"sqlite:///{db}")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_round_trip_store_reuse_retrain_compare(study_db: Path, tmp_path: Path) -> None:
    db = _copy(study_db, tmp_path)
    out = tmp_path / "model"
    first = _personalise(db, "--features", FEATURES, "--out", str(out), "--json", *QUICK)
    assert first.exit_code == 0, first.output
    got = json.loads(first.stdout)
    assert got["study"] == "s/learned" and got["trial"] == 0 and not got["reused"]
    lift = got["learned"]["metrics"]["objective"]["learned_minus_global"]
    assert lift["low"] <= lift["value"] <= lift["high"]
    spec = json.loads((out / "weight_model.json").read_text())
    assert spec["personalised"] == got["learned"]["guard"]["personalised"]
    assert spec["features"] == FEATURES.split(",") and spec["tasks"] == list(TASKS)
    assert (out / "weight_model.pt").exists() == spec["personalised"]
    assert set(spec["default_weights"]) == set(TASKS) and spec["guard"]["reason"]
    # stored as an ordinary Optuna trial: its value is the held-out estimate reported
    learned = optuna.load_study(study_name="s/learned", storage=f"sqlite:///{db}")
    (trial,) = learned.trials
    assert trial.value == pytest.approx(
        got["learned"]["metrics"]["objective"]["learned"]["value"])
    assert trial.user_attrs["features"] == FEATURES.split(",")
    assert learned.user_attrs["fusiontune:learned_export"]["path"] == str(out.resolve())
    # a rerun reuses it (the same figures, no training); other settings need --retrain
    again = _personalise(db, "--json", "--no-progress")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["reused"] and json.loads(again.stdout)["trial"] == 0
    assert json.loads(again.stdout)["learned"] == got["learned"]
    other = _personalise(db, "--features", FEATURES, "--tau", "0.5", "--no-progress")
    assert other.exit_code == 1 and "--tau" in other.output and "--retrain" in other.output
    fresh = _personalise(db, "--retrain", "--seed", "1", "--json", *QUICK)
    assert fresh.exit_code == 0, fresh.output
    assert json.loads(fresh.stdout)["trial"] == 1 and not json.loads(fresh.stdout)["reused"]
    # compare shows it beside global and control; the learned study is not a search
    cmp = _invoke("search", "compare", "--storage", str(db), "--study", "s", "--json")
    assert cmp.exit_code == 0, cmp.output
    shown = json.loads(cmp.stdout)["learned"]["metrics"]["objective"]
    assert shown["learned"]["value"] == pytest.approx(
        json.loads(fresh.stdout)["learned"]["metrics"]["objective"]["learned"]["value"])
    text = _invoke("search", "compare", "--storage", str(db), "--study", "s")
    assert "learned weight model vs global vs control" in text.output
    refused = _invoke("search", "history", "--storage", str(db), "--study", "s/learned")
    assert refused.exit_code == 1 and "search personalise --study s" in refused.output


def test_bad_input_exits_non_zero_and_writes_nothing(study_db: Path, tmp_path: Path) -> None:
    db = _copy(study_db, tmp_path)
    out = tmp_path / "model"
    missing = _personalise(tmp_path / "none.db", "--features", FEATURES, "--out", str(out))
    assert missing.exit_code == 1 and "no database file" in missing.output
    assert not (tmp_path / "none.db").exists()
    no_study = _invoke("search", "personalise", "--storage", str(db), "--study", "t",
                       "--features", FEATURES, "--out", str(out))
    assert no_study.exit_code == 1 and "studies: s" in no_study.output
    unknown = _personalise(db, "--features", "user_activity,shoe_size", "--out", str(out))
    assert unknown.exit_code == 1
    assert "'shoe_size'" in unknown.output and "user_segment" in unknown.output
    item = _personalise(db, "--features", "item_price", "--out", str(out))
    assert item.exit_code == 1 and "request-level" in item.output
    no_features = _personalise(db, "--out", str(out))
    assert no_features.exit_code == 1 and "--features" in no_features.output
    assert not out.exists() and _names(db) == ["s"]
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    exists = _personalise(db, "--features", FEATURES, "--out", str(out), *QUICK)
    assert exists.exit_code == 1 and "--force" in exists.output
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and _names(db) == ["s"]
    assert len(exists.output.strip().splitlines()) == 1


def _world_arrays(log: WorldLog, x: np.ndarray) -> LogArrays:
    fb = SlateFeedback.from_traffic(log.traffic, TASKS)
    return LogArrays(FUSION.transform(log.scores), (fb.rewards @ OBJ).astype(np.float32),
                     fb.shown.astype(np.float32), fb.logging_exposure, fb.slot_examination,
                     log.world.examination.astype(np.float32), x.astype(np.float32))


def _features(log: WorldLog) -> np.ndarray:
    return np.stack([request_feature(log.traffic, f) for f in FEATURES.split(",")], axis=1)


def _halves(seed: int, n: int, h: float = 0.0) -> tuple[WorldLog, WorldLog]:
    log = make_log(seed, n, taste_heterogeneity=h)
    parts = split_log(log.traffic, {"search": 0.5, "holdout": 0.5}, seed)
    return log.part(parts["search"]), log.part(parts["holdout"])


def _true_objective(log: WorldLog, weights: np.ndarray) -> float:
    """The exact objective of the policy ranking request ``r`` by ``weights[r]``."""
    fused = np.einsum("rns,rs->rn", FUSION.transform(log.scores), weights)[None]
    exposure = log.policy.exposure(fused, log.world.examination)
    return float(log.world.true_value(log.traffic, exposure)[0] @ OBJ)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_export_reproduces_the_weights_and_a_bad_one_is_refused(
        demo_files: DemoFiles, study_db: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    search, held = _halves(3, 600)
    cfg = WeightModelConfig(epochs=6, patience=6)
    learned = train(_world_arrays(search, _features(search)), BASE, tuple(FEATURES.split(",")),
                    TASKS, cfg)
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{study_db}")
    ws = Workspace(SearchSettings.from_dict(study.user_attrs["fusiontune:settings"]))
    ev = evaluate_learned(ws, learned.weights, FEATURES.split(","), BASE)
    yes = LearnedEvaluation(ev.estimate, dataclasses.replace(ev.decision, personalised=True),
                            "")
    rows = _features(held).astype(np.float32)
    out = write_export(tmp_path / "m", learned, yes, ws, BASE, rows, False, {})
    scripted = torch.jit.load(str(out / "weight_model.pt"))
    with torch.no_grad():
        again = scripted(torch.from_numpy(rows)).double().numpy()
    np.testing.assert_allclose(again, learned.weights(rows), rtol=1e-6)
    spec = json.loads((out / "weight_model.json").read_text())
    back = LearnedWeights.from_spec(spec)
    np.testing.assert_allclose(back.weights(rows), learned.weights(rows), rtol=1e-6)
    assert spec["personalised"] and spec["fusion"]["formula"] == "multiplicative"
    assert spec["mean"] and spec["std"]  # the normalisation travels with the model

    real_export = LearnedWeights.export

    def drifted(self: LearnedWeights, folder: Path, extra: dict) -> tuple[Path, Path]:
        pt, js = real_export(self, folder, extra)
        bad = json.loads(js.read_text())
        bad["head_b"][1] += 0.01  # a common shift would cancel against the pinned weight
        js.write_text(json.dumps(bad))
        return pt, js

    monkeypatch.setattr(LearnedWeights, "export", drifted)
    with pytest.raises(ValueError, match="weight_model.json does not reproduce"):
        write_export(tmp_path / "m2", learned, yes, ws, BASE, rows, False, {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # nothing half-written
    with pytest.raises(ValueError, match="weight_model.json does not reproduce"):
        write_export(out, learned, yes, ws, BASE, rows, True, {})
    assert json.loads((out / "weight_model.json").read_text()) == spec  # the old one stays


@pytest.mark.slow
def test_held_out_estimate_of_the_learned_policy_is_unbiased() -> None:
    """Mean over seeds of (held-out SNIPS estimate - exact truth on the same requests) is
    within three standard errors of 0: training on the search split does not bias it (a
    world whose users' best weights differ, so that the model has something to learn)."""
    diffs, moved = [], 0
    for seed in range(8):
        search, held = _halves(10 + seed, 5000, h=2.0)
        learned = train(_world_arrays(search, _features(search)), BASE,
                        tuple(FEATURES.split(",")), TASKS,
                        WeightModelConfig(epochs=40, patience=10, seed=seed))
        w = learned.weights(_features(held))
        moved += not np.allclose(w, BASE)  # early stopping may keep the start
        est = per_request_estimate(held.replay(SNIPS()), w[None], OBJECTIVE_WEIGHTS)
        diffs.append(est.value[0, -1] - _true_objective(held, w))
    d = np.asarray(diffs)
    print(f"moved on {moved} seeds; estimate - truth {d.mean():+.4f} +- "
          f"{d.std(ddof=1) / np.sqrt(len(d)):.4f}: {np.round(d, 4)}")
    assert moved >= len(d) // 2  # mostly a learned policy, not the global one
    assert abs(d.mean()) <= 3 * d.std(ddof=1) / np.sqrt(len(d)), d


@pytest.mark.slow
def test_the_guard_refuses_where_features_carry_no_taste() -> None:
    """Features drawn independently of everything: whatever the model learns from them is
    noise, and the guard exports it on at most one seed of five."""
    exported = 0
    for seed in range(5):
        search, held = _halves(20 + seed, 3000)
        rng = np.random.default_rng(seed)
        x_search, x_held = (rng.standard_normal((log.traffic.n_requests, 2))
                            for log in (search, held))
        learned = train(_world_arrays(search, x_search), BASE, ("a", "b"), TASKS,
                        WeightModelConfig(epochs=40, patience=10, seed=seed))
        w = learned.weights(x_held)
        est = per_request_estimate(held.replay(SNIPS()), np.stack(
            [w, np.tile(BASE, (len(w), 1))]), OBJECTIVE_WEIGHTS, np.array([[1.0, -1.0]]))
        exported += guard(est).personalised
    assert exported <= 1


def test_a_policy_that_breaks_a_guardrail_is_not_exported(study_db: Path) -> None:
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{study_db}")
    settings = SearchSettings.from_dict(study.user_attrs["fusiontune:settings"])
    strict = Workspace(dataclasses.replace(settings, guardrails={"click": 0.0}))
    # weights that rank by conversion and like alone: clicks fall below the control's
    away = np.array([1.0, 4.0, 4.0])
    ev = evaluate_learned(strict, lambda x: np.tile(away, (len(x), 1)), ["user_activity"],
                          BASE)
    assert "click" in ev.broken and not ev.decision.personalised
    forced = with_guardrails(dataclasses.replace(ev.decision, personalised=True), ev.broken)
    assert not forced.personalised and "guardrail" in forced.reason
    free = evaluate_learned(Workspace(settings), lambda x: np.tile(away, (len(x), 1)),
                            ["user_activity"], BASE)
    assert free.broken == ""
