"""``search run --estimator auc|gauc``: a search ranked by a fused-score AUC proxy, whose
trials carry an ordering score (no unit, no interval) and whose every metric, held-out
figure and interval is SNIPS's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pytest
from click.testing import CliRunner, Result

from simulator.proxies import AUCProxy
from tests.tuner.test_streamed_search import write_files
from tuner.cli import main
from tuner.evaluation.objective import FusionObjective
from tuner.evaluation.search_data import SEARCH, SearchSettings, Workspace
from tuner.study import load_search

OBJECTIVE = {"click": 1.0, "conversion": 10.0, "like": 5.0}
OBJECTIVE_TEXT = "click=1,conversion=10,like=5"


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def _run(db: Path, logs: Path, scores: Path, *extra: str) -> Result:
    return _invoke("search", "run", "--storage", str(db), "--study", "s", "--logs", str(logs),
                   "--scores", str(scores), "--objective", OBJECTIVE_TEXT, "--rounds", "2",
                   "--population", "8", "--no-progress", *extra)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_files(tmp_path_factory.mktemp("ordering"), 1)


@pytest.mark.parametrize("kind", ["auc", "gauc"])
def test_trials_store_the_proxy_of_their_weights_and_no_interval(
        files: tuple[Path, Path], tmp_path: Path, kind: str) -> None:
    logs, scores = files
    db = tmp_path / "s.db"
    result = _run(db, logs, scores, "--estimator", kind)
    assert result.exit_code == 0, result.output
    assert "an ordering score (no unit, no interval; not a metric)" in result.output
    study, search = load_search(f"sqlite:///{db}", "s")
    assert search.settings["estimator"] == kind
    trials = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(trials) == 16
    weights = np.stack([search.space.to_weights(t.params) for t in trials])
    replay = Workspace(SearchSettings.from_dict(search.settings)).replay(SEARCH)
    want = AUCProxy(replay.feedback, replay.scores, replay.score_tasks,
                    replay.fusion).evaluate(weights, OBJECTIVE)
    combined, per_task = ((want.auc_combined, want.auc) if kind == "auc"
                          else (want.gauc_combined, want.gauc))
    np.testing.assert_allclose([t.value for t in trials], combined, rtol=1e-12)
    for i, task in enumerate(want.tasks):
        np.testing.assert_allclose([t.user_attrs[f"metric:{task}"] for t in trials],
                                   per_task[:, i], rtol=1e-12)
    assert all(t.user_attrs["ci_low"] is None and t.user_attrs["ci_high"] is None
               and t.user_attrs["ess"] is None for t in trials)
    assert 0.5 < max(combined) < 1.0  # an AUC, not a value per request
    history = _invoke("search", "history", "--storage", str(db), "--study", "s")
    assert history.exit_code == 0 and " - " in history.output


def test_a_vector_s_ordering_score_does_not_depend_on_the_vectors_beside_it(
        files: tuple[Path, Path]) -> None:
    """Unlike gated_dr's pooling, workers may split a generation of an AUC study."""
    logs, scores = files
    ws = Workspace(SearchSettings(logs=str(logs), scores=str(scores), objective=OBJECTIVE,
                                  estimator="gauc"))
    objective = FusionObjective.for_workspace(ws)
    w = np.random.default_rng(0).uniform(0.2, 3.0, size=(6, 3))
    w[:, 0] = 1.0
    whole = [r.value for r in objective(w)]
    parts = [r.value for r in objective(w[:2])] + [r.value for r in objective(w[2:])]
    np.testing.assert_allclose(parts, whole, rtol=1e-12)


def test_export_and_compare_report_snips_and_name_the_ordering(
        files: tuple[Path, Path], tmp_path: Path) -> None:
    logs, scores = files
    db = tmp_path / "s.db"
    assert _run(db, logs, scores, "--estimator", "auc").exit_code == 0
    out = tmp_path / "w.json"
    result = _invoke("search", "export", "--storage", str(db), "--study", "s", "--out",
                     str(out), "--force-pick")
    assert result.exit_code == 0, result.output
    extra = json.loads(out.read_text())["extra"]
    assert extra["estimator"] == "snips" and extra["search_ranked_by"] == "auc"
    assert extra["control_test"]["estimator"] == "cdr"
    lift = extra["lift_vs_control"]
    assert lift["low"] < lift["value"] < lift["high"]  # a metric, with its interval
    cmp = _invoke("search", "compare", "--storage", str(db), "--study", "s", "--json")
    assert cmp.exit_code == 0, cmp.output
    assert json.loads(cmp.stdout)["estimator"] == "snips"


@pytest.mark.parametrize(("extra", "message"), [
    (("--guardrail", "click=0.05"), "ordering score 'auc' has none"),
    (("--until", "converged"), "an ordering score (auc, gauc) has none"),
    (("--estimator-param", "clip=5"), "ordering score 'auc' has no parameters"),
    (("--objective", "click=1,like=-2"), "which must be >= 0"),
])
def test_what_an_ordering_score_cannot_do_is_refused_before_the_study_exists(
        files: tuple[Path, Path], tmp_path: Path, extra: tuple[str, ...], message: str
        ) -> None:
    logs, scores = files
    db = tmp_path / "s.db"
    result = _run(db, logs, scores, "--estimator", "auc", *extra)
    assert result.exit_code != 0
    assert message in result.output
    assert not db.exists() or "s" not in optuna.get_all_study_names(f"sqlite:///{db}")


def test_a_streamed_log_is_refused_with_an_ordering_score(tmp_path: Path) -> None:
    logs, scores = write_files(tmp_path, 3)
    db = tmp_path / "s.db"
    result = _run(db, logs, scores, "--estimator", "gauc")
    assert result.exit_code != 0
    assert "cannot be streamed" in result.output and "one Parquet file" in result.output
    assert not db.exists() or "s" not in optuna.get_all_study_names(f"sqlite:///{db}")
