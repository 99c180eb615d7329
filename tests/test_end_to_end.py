"""``fusiontune demo`` end to end: world -> logs -> ranker -> scores -> CEM study -> A/B -> JSON.

Small settings (2,000 requests, 1 epoch, 2 rounds of 4) keep it to a few seconds; what
is checked is the plumbing between the stages, not the quality of the weights.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner

from ranker import load_checkpoint
from simulator.logs import LoggedTraffic
from tuner.cli import main
from tuner.picks.export import ExportedWeights

pytestmark = pytest.mark.slow  # every test here runs the whole demo

ROUNDS, POPULATION = 2, 4
FILES = ("logs.parquet", "scores.parquet", "ranker.pt", "study.db", "weights.json")


def _demo(out: Path, *extra: str) -> str:
    args = ["demo", "--out", str(out), "--requests", "2000", "--rounds", str(ROUNDS),
            "--population", str(POPULATION), "--epochs", "1", "--no-progress", *extra]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def demo_text(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One demo run with its text output."""
    out = tmp_path_factory.mktemp("demo")
    return out, _demo(out)


def test_demo_writes_every_artefact(demo_text: tuple[Path, str]) -> None:
    """Logs, scores, checkpoint, study and export all exist, and the export names the log
    and the checkpoint it came from by their fingerprints."""
    out, _ = demo_text
    for name in FILES:
        assert (out / name).is_file(), name
    exported = ExportedWeights.from_json((out / "weights.json").read_text())
    assert exported.pick == "strategy" and exported.trial_number is None
    assert exported.study_name == "demo" and exported.objective["split"] == "holdout"
    assert exported.data_fingerprint == LoggedTraffic.read(out / "logs.parquet").fingerprint()
    _, meta = load_checkpoint(out / "ranker.pt")
    assert exported.model_fingerprint == meta["fingerprint"]


def test_demo_study_opens_as_a_plain_optuna_study(demo_text: tuple[Path, str]) -> None:
    """``optuna.load_study`` (what optuna-dashboard does) opens the study: population x
    rounds complete trials, each tagged with its round."""
    out, _ = demo_text
    study = optuna.load_study(study_name="demo", storage=f"sqlite:///{out / 'study.db'}")
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(study.trials) == len(trials) == ROUNDS * POPULATION
    assert Counter(t.user_attrs["round"] for t in trials) == {
        r: POPULATION for r in range(ROUNDS)}
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE


def test_demo_prints_rounds_and_ab_tables(demo_text: tuple[Path, str]) -> None:
    """The text output has the per-round table and, for both picks, the A/B table with the
    world's true lift on every metric."""
    _, text = demo_text
    lines = text.splitlines()
    header = lines.index(next(s for s in lines if s.startswith("CEM rounds")))
    assert lines[header + 1].split()[:3] == ["round", "trials", "best"]
    assert [int(s.split()[0]) for s in lines[header + 3:header + 3 + ROUNDS]] == [0, 1]
    for pick in ("strategy", "best_trial"):
        start = lines.index(next(s for s in lines if f"pick '{pick}'" in s))
        assert "true lift" in lines[start + 1] and "lift 95% interval" in lines[start + 1]
        metrics = [s.split()[0] for s in lines[start + 3:start + 7]]
        assert metrics == ["click", "conversion", "like", "objective"]
    assert any(s.startswith("exported 'strategy'") for s in lines)


def test_demo_json_output_parses(tmp_path: Path) -> None:
    """``demo --json`` prints one JSON document (progress goes to stderr) with the rounds,
    both picks with held-out estimates and truth, and the export path."""
    data = json.loads(_demo(tmp_path, "--json"))
    assert [r["round"] for r in data["rounds"]] == list(range(ROUNDS))
    assert [p["pick"] for p in data["picks"]] == ["strategy", "best_trial"]
    for pick in data["picks"]:
        value, low, high = pick["holdout"]["objective"]
        assert low <= value <= high
        assert set(pick["true"]) == {"click", "conversion", "like"}
    assert Path(data["export"]) == tmp_path / "weights.json"
    assert set(data["control_truth"]) == {"click", "conversion", "like"}


def test_demo_on_the_kuairand_fitted_world(tmp_path: Path) -> None:
    """One flag runs the whole loop on the world fitted on real KuaiRand logs."""
    import os

    data = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kuairand-pure"
    if not data.is_dir() and not os.environ.get("FUSIONTUNE_KUAIRAND"):
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs the KuaiRand data at {data}")
        pytest.skip(f"KuaiRand data not found at {data}")
    result = CliRunner().invoke(
        main, ["demo", "--world", "kuairand", "--out", str(tmp_path), "--requests", "3000",
               "--rounds", "2", "--population", "8", "--epochs", "1", "--no-progress"],
        catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for task in ("click", "long_view", "like", "profile_enter"):
        assert task in result.output
    assert "true lift" in result.output
    exported = json.loads((tmp_path / "weights.json").read_text())
    assert exported["tasks"] == ["click", "long_view", "like", "profile_enter"]
