"""``search compare``: the leading picks of a study on one split, with paired differences."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

from simulator.replay import MIN_EVENTS
from simulator.report import ab_report
from tuner.cli import main
from tuner.evaluation.search_data import HOLDOUT, SearchSettings, Workspace
from tuner.study import load_search

if TYPE_CHECKING:
    from tests.tuner.conftest import DemoFiles

CONTROL = "click=1,conversion=0.5,like=0.5"


def invoke(args: list[str]) -> Result:
    return CliRunner().invoke(main, args, catch_exceptions=False)


@pytest.fixture(scope="module")
def study_db(demo_files: DemoFiles, tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("compare") / "s.db"
    result = invoke([*demo_files.new_study_args(db), "--control", CONTROL])
    assert result.exit_code == 0, result.output
    return db


def compare_json(db: Path, *extra: str) -> dict[str, Any]:
    result = invoke(["search", "compare", "--storage", str(db), "--study", "s", "--json",
                     *extra])
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))  # stderr may hold few-events warnings


def test_picks_are_ordered_and_their_differences_are_paired(study_db: Path) -> None:
    data = compare_json(study_db, "--top", "3", "--order", "estimate")
    assert data["order"] == "snips" and data["order_note"] == ""
    picks = data["picks"]
    labels = [p["label"] for p in picks]
    assert len(picks) == 5 and "cem mean" in labels and "control" in labels
    values = [p["estimate"]["value"] for p in picks]
    assert values == sorted(values, reverse=True)
    leader = picks[0]
    assert leader["diff_vs_leader"] is None and leader["p_leader_better"] is None
    for p in picks[1:]:
        d = p["diff_vs_leader"]
        assert d["value"] == pytest.approx(p["estimate"]["value"] - leader["estimate"]["value"])
        assert 0.5 <= p["p_leader_better"] <= 1.0
        assert p["separated"] == (d["high"] < 0 or d["low"] > 0)
    # the same pair through the A/B report (leader as control) gives the same paired interval
    study, search = load_search(f"sqlite:///{study_db}", "s")
    raw = search.settings
    ws = Workspace(SearchSettings.from_dict(raw))
    other = picks[-1]
    def weights(pick: dict[str, Any]) -> np.ndarray:
        return np.array([pick["weights"][t] for t in data["tasks"]])

    report = ab_report(ws.replay(HOLDOUT), weights(leader), weights(other),
                       ws.settings.objective)
    lift = report.row("objective").lift
    # not to 1e-4: TopKPolicy breaks ties among equal fused scores (the demo ranker's
    # float32 scores have some) by torch.topk's order, which depends on how many vectors
    # share the call, so a tied request may get its candidates in other slots
    assert (lift.low, lift.high) == pytest.approx(
        (other["diff_vs_leader"]["low"], other["diff_vs_leader"]["high"]), rel=5e-3, abs=1e-3)
    assert data["split"] == "holdout" and data["n_requests"] == report.n_requests


def test_the_default_ranks_by_gated_dr_and_reports_the_estimator(study_db: Path) -> None:
    """``--order auto`` on a log held whole with every task scored ranks by gated_dr (an
    ordering score); the figures stay the study estimator's, paired against that leader."""
    data = compare_json(study_db, "--top", "3")
    by_estimate = compare_json(study_db, "--top", "3", "--order", "estimate")
    assert data["order"] == "gated_dr" and data["estimator"] == "snips"
    scores = [p["order_score"] for p in data["picks"]]
    assert scores == sorted(scores, reverse=True)
    # the same picks, the same estimates: only the ranking (and so the leader) moved
    estimates = {p["label"]: p["estimate"] for p in by_estimate["picks"]}
    assert {p["label"]: p["estimate"] for p in data["picks"]} == estimates
    leader = data["picks"][0]
    for p in data["picks"][1:]:
        assert p["diff_vs_leader"]["value"] == pytest.approx(
            p["estimate"]["value"] - leader["estimate"]["value"])
        # the estimate may rank a pick above the ordering's leader: P(leader better) < 0.5
        assert (p["p_leader_better"] < 0.5) == (p["diff_vs_leader"]["value"] > 0)
    # the ordering scores are gated_dr's values of these picks, not the estimates
    assert any(abs(p["order_score"] - p["estimate"]["value"]) > 1e-9 for p in data["picks"])
    text = invoke(["search", "compare", "--storage", str(study_db), "--study", "s"]).output
    assert "gated_dr (rank)" in text and "an ordering score with no metric's units" in text


def test_the_probability_falls_as_the_gap_closes(study_db: Path) -> None:
    """Within one comparison a pick farther below the leader (in standard errors of its
    difference) gets a higher probability that the leader is better."""
    picks = compare_json(study_db, "--top", "6")["picks"][1:]
    z = [-p["diff_vs_leader"]["value"] / (p["diff_vs_leader"]["high"]
                                          - p["diff_vs_leader"]["low"]) for p in picks]
    prob = [p["p_leader_better"] for p in picks]
    order = np.argsort(z)
    assert np.all(np.diff(np.array(prob)[order]) >= -0.05), (z, prob)


def test_table_and_verdict_print(study_db: Path) -> None:
    result = invoke(["search", "compare", "--storage", str(study_db), "--study", "s",
                     "--metric", "like", "--split", "search"])
    assert result.exit_code == 0, result.output
    assert "metric 'like'" in result.output and "P(leader better)" in result.output
    assert "picks differ from the leader" in result.output and "search requests" in result.output


def test_thin_estimates_are_warned_about(study_db: Path) -> None:
    """The test log is small (500 held-out requests): the picks' objective estimates rest
    on fewer effective events than an interval can be trusted on, and stderr says so."""
    result = invoke(["search", "compare", "--storage", str(study_db), "--study", "s",
                     "--top", "1"])
    assert result.exit_code == 0, result.output
    data = compare_json(study_db, "--top", "1")
    thin = [p["label"] for p in data["picks"] if p["estimate"]["events"] < MIN_EVENTS]
    assert thin, data
    for label in thin:
        assert f"warning: {label}: objective rests on" in result.stderr


def test_unknown_metric_is_refused(study_db: Path) -> None:
    result = invoke(["search", "compare", "--storage", str(study_db), "--study", "s",
                     "--metric", "watch"])
    assert result.exit_code == 1
    assert "unknown metric 'watch'" in result.output and "'objective'" in result.output


def export_best(db: Path, tmp_path: Path, *extra: str) -> dict[str, Any]:
    result = invoke(["search", "export", "--storage", str(db), "--study", "s", "--json",
                     "--force-pick", "--best", *extra])
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def test_export_best_ranks_the_best_trials_by_gated_dr(study_db: Path, tmp_path: Path) -> None:
    """``search export --best`` (``--order auto`` on a log held whole, every task scored)
    takes, of the 32 best trials by stored value, the one gated_dr on the search split
    ranks first; ``--order estimate`` the best stored value, as before."""
    from tuner.picks.control_test import gated_dr
    from tuner.picks.picking import BEST_CANDIDATES

    study, search = load_search(f"sqlite:///{study_db}", "s")
    trials = sorted((t for t in study.trials if t.value is not None),
                    key=lambda t: -float(t.value))  # type: ignore[arg-type]
    top = trials[:BEST_CANDIDATES]
    data = export_best(study_db, tmp_path)
    sel = data["extra"]["selection"]
    assert sel["ranked_by"] == "gated_dr" and sel["note"] == ""
    assert sel["candidates"] == [t.number for t in top]
    assert sel["stored_values"] == pytest.approx([t.value for t in top])
    # the scores are gated_dr's, pooled over the candidates on the search split
    ws = Workspace(SearchSettings.from_dict(search.settings))
    weights = np.stack([search.space.to_weights(t.params) for t in top])
    want = ws.replay_as("search", gated_dr()).evaluate(weights, ws.settings.objective)
    assert sel["scores"] == pytest.approx(list(want.value[:, -1]), rel=1e-9)
    chosen = sel["candidates"][int(np.argmax(sel["scores"]))]
    assert data["trial_number"] == chosen and data["pick"] == "best_trial"
    assert data["weights"] == pytest.approx(dict(zip(
        data["tasks"], search.space.to_weights(study.trials[chosen].params), strict=True)))
    # on this study gated_dr does not rank the stored best first: the two orders differ
    assert chosen != top[0].number
    by_value = export_best(study_db, tmp_path, "--order", "estimate")
    assert by_value["trial_number"] == top[0].number
    assert by_value["extra"]["selection"]["ranked_by"] == "snips"


def test_export_order_without_best_is_refused(study_db: Path) -> None:
    result = CliRunner().invoke(main, ["search", "export", "--storage", str(study_db),
                                       "--study", "s", "--json", "--order", "gated_dr"])
    assert result.exit_code != 0 and "--order ranks the trials of --best" in result.output


def test_history_ranks_the_rounds_picks_by_gated_dr(demo_files: DemoFiles,
                                                    tmp_path: Path) -> None:
    """``search history --order gated_dr`` gives each completed round's pick its gated_dr
    objective on the search split, pooled over those picks, and marks the first."""
    from tuner.picks.control_test import gated_dr
    from tuner.study import picks_by_round

    study_db = tmp_path / "s.db"
    two = invoke([*demo_files.new_study_args(study_db, rounds=2), "--control", CONTROL])
    assert two.exit_code == 0, two.output
    # two rounds are too few to pool: refused, naming why and the way out
    few = CliRunner().invoke(main, ["search", "history", "--storage", str(study_db),
                                    "--study", "s", "--order", "gated_dr"])
    assert few.exit_code != 0 and "pools at least 3" in few.output
    assert invoke([*demo_files.new_study_args(study_db, rounds=4),
                   "--control", CONTROL]).exit_code == 0

    result = invoke(["search", "history", "--storage", str(study_db), "--study", "s",
                     "--json", "--order", "gated_dr"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    study, search = load_search(f"sqlite:///{study_db}", "s")
    picks = search.space.matrix_to_weights(picks_by_round(study, search))
    ws = Workspace(SearchSettings.from_dict(search.settings))
    want = ws.replay_as("search", gated_dr()).evaluate(picks, ws.settings.objective)
    got = [r["pick_gated_dr"] for r in rows[:len(picks)]]
    assert len(picks) >= 3 and got == pytest.approx(list(want.value[:, -1]), rel=1e-9)
    text = invoke(["search", "history", "--storage", str(study_db), "--study", "s",
                   "--order", "gated_dr"]).output
    first = int(np.argmax(got)) + 1
    assert f"the pick after round {first} is first" in text
    plain = invoke(["search", "history", "--storage", str(study_db), "--study", "s", "--json"])
    assert "pick_gated_dr" not in plain.stdout
    refused = CliRunner().invoke(main, ["search", "history", "--storage", str(study_db),
                                        "--study", "s", "--trials", "--order", "gated_dr"])
    assert refused.exit_code != 0 and "takes no --trials" in refused.output
