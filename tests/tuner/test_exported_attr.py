"""``search export`` leaves its pick and held-out value in the study's user attrs, where
Optuna's dashboard shows them beside the best (winner's-curse) trial."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
import pytest

from tests.tuner.test_cli import invoke
from tuner.study import ATTR_EXPORTED

if TYPE_CHECKING:
    from tests.tuner.conftest import DemoFiles


def test_export_sets_the_study_user_attr(demo_files: DemoFiles, tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    assert invoke(demo_files.new_study_args(db, rounds=1)).exit_code == 0
    for flags, pick in (([], "strategy"), (["--best"], "best_trial")):
        out = tmp_path / f"{pick}.json"
        result = invoke(["search", "export", "--storage", str(db), "--study", "s",
                         "--out", str(out), "--force-pick", *flags])
        assert result.exit_code == 0, result.output
        saved = json.loads(out.read_text())
        study = optuna.load_study(study_name="s", storage=f"sqlite:///{db}")
        attr = study.user_attrs[ATTR_EXPORTED]  # the last export wins
        assert attr["pick"] == pick
        assert attr["weights"] == pytest.approx(saved["weights"])
        assert attr["trial"] == saved["trial_number"]
        assert attr["split"] == "holdout"
        held = attr["holdout"]
        assert held["value"] == pytest.approx(saved["objective"]["value"])
        assert held["low"] <= held["value"] <= held["high"]
        assert attr["search_value"] == pytest.approx(saved["extra"]["search_split_value"])
        test = attr["control_test"]  # the test recorded in the file, also in the study
        assert test == saved["extra"]["control_test"]
        assert test["rule"] == "one-sided" and test["estimator"] == "cdr"
        assert test["verdict"] in ("pick", "control") and test["level"] == 0.95
    # the last export (--best) is the study's: its trial is the one it chose
    sel = saved["extra"]["selection"]
    assert attr["trial"] == sel["candidates"][max(range(len(sel["scores"])),
                                                  key=sel["scores"].__getitem__)]
