"""Guardrails: parsing, paired-lift judgement, and infeasible trials never best."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pytest
from click.testing import CliRunner

from simulator.estimators import IPS
from simulator.intervals import NormalInterval
from tests.simulator.toylog import make_toy
from tests.tuner.conftest import DemoFiles
from tuner.cli import main
from tuner.evaluation.guardrails import Guardrail, guardrail_reasons, parse_guardrails
from tuner.study import is_feasible_complete


def test_parse_forms_and_errors() -> None:
    assert parse_guardrails("click=0.05,like=2%", ["click", "like"]) == (
        Guardrail("click", 0.05), Guardrail("like", 0.02))
    assert parse_guardrails({"click": 0.1}) == (Guardrail("click", 0.1),)
    assert parse_guardrails(None) == ()
    with pytest.raises(ValueError, match=r"unknown metric\(s\) \['clicks'\]; valid: \['click'\]"):
        parse_guardrails("clicks=0.05", ["click"])
    with pytest.raises(ValueError, match="not <metric>=<max drop>"):
        parse_guardrails("click", ["click"])
    with pytest.raises(ValueError, match=r"max drop must be a fraction in \[0, 1\)"):
        parse_guardrails("click=1.5", ["click"])


def test_reasons_follow_the_paired_lift_lower_bound() -> None:
    from simulator.estimators import SlateFeedback
    from simulator.fusion import MultiplicativeFusion
    from simulator.policies import TopKPolicy
    from simulator.replay import Replay

    traffic, _, scores = make_toy(0, n_requests=3000)
    replay = Replay(SlateFeedback.from_traffic(traffic), scores, ("click", "like"),
                    MultiplicativeFusion(), TopKPolicy(3), IPS(), NormalInterval())
    control = np.array([1.0, 0.0])  # ranks by click alone: the most clicks
    treatments = np.array([[1.0, 0.0], [0.0, 1.0]])  # itself, and like-only ranking
    terms = replay.terms(np.vstack([control, treatments]))
    loose = guardrail_reasons(terms, replay.interval, ("click", "like"),
                              [Guardrail("click", 0.9)])
    strict = guardrail_reasons(terms, replay.interval, ("click", "like"),
                               [Guardrail("click", 0.0)])
    assert loose == ["", ""]
    # the control itself has a paired lift of exactly 0 on every request: feasible even
    # with no drop allowed; ranking by like alone loses clicks
    assert strict[0] == ""
    assert strict[1].startswith("click: lift lower bound")


def test_infeasible_trials_are_recorded_and_never_best(demo_files: DemoFiles,
                                                       tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    args = demo_files.new_study_args(db, rounds=2, population=8)
    # 5%: on this 2,000-request demo's search split (a hash of the request ids) every trial
    # breaks a 2% guardrail
    result = CliRunner().invoke(main, [*args, "--guardrail", "click=0.05",
                                       "--control", "click=1,conversion=0.5,like=0.5"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{db}")
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    infeasible = [t for t in trials if not is_feasible_complete(t)]
    assert infeasible, "a 5% click guardrail should reject some like-heavy weight vectors"
    assert len(infeasible) < len(trials)
    assert all("click: lift lower bound" in t.user_attrs["infeasible"] for t in infeasible)

    history = CliRunner().invoke(main, ["search", "history", "--storage", str(db), "--study",
                                        "s", "--json"], catch_exceptions=False)
    bad = {t.number for t in infeasible}
    assert all(r["best_trial"] not in bad for r in json.loads(history.output))

    out = tmp_path / "best.json"
    export = CliRunner().invoke(main, ["search", "export", "--storage", str(db), "--study", "s",
                                       "--best", "--out", str(out), "--json"])
    if export.exit_code == 0:
        assert json.loads(export.stdout)["trial_number"] not in bad
    else:  # the best feasible search trial may still break the guardrail on held-out logs
        assert "breaks a guardrail on the held-out split" in export.output
    refused = CliRunner().invoke(main, ["search", "export", "--storage", str(db), "--study", "s",
                                        "--trial", str(min(bad)), "--out", str(out),
                                        "--force"])
    assert refused.exit_code == 1
    assert f"trial {min(bad)} breaks a guardrail" in refused.output
