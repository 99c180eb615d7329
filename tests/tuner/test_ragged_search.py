"""A ragged log, and one with only its shown rows' propensities, through the search CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest

from simulator.logs import LoggedTraffic
from simulator.worlds import MarketplaceConfig, MarketplaceWorld
from tests.tuner.test_cli import assert_user_error, invoke
from tuner.evaluation.scores import ScoreTable

OBJECTIVE = "click=1,conversion=10,like=5"


def _files(tmp_path: Path, shown_only: bool = False) -> tuple[Path, Path, LoggedTraffic]:
    """A ragged marketplace log (3..12 candidates, 2..5 slots seen) and its noisy scores,
    the table's rows in another order than the log's."""
    world = MarketplaceWorld(MarketplaceConfig(n_requests=800, candidates="3:12",
                                               shown_slots="2:5", seed=4))
    traffic = world.generate()
    if shown_only:  # what production logging records: the served impression's propensity
        traffic = traffic.shown_only()
    p = world.true_probabilities(traffic)
    noisy = np.clip(p * np.exp(0.3 * np.random.default_rng(0).standard_normal(p.shape)),
                    1e-6, 1.0)
    keep = traffic.valid
    assert keep is not None
    flip = np.where(keep[..., None], noisy, 0.0)[:, ::-1]  # the table lists candidates backwards
    items = np.where(keep, traffic.item_ids, -1)[:, ::-1]
    order = np.argsort(items < 0, axis=1, kind="stable")  # its padding after, as read
    table = ScoreTable(traffic.request_ids, np.take_along_axis(items, order, 1),
                       {t: np.take_along_axis(flip[..., i], order, 1)
                        for i, t in enumerate(("click", "conversion", "like"))})
    logs = traffic.write(tmp_path / "ragged.parquet")
    scores = table.write(tmp_path / "scores.parquet")
    return logs, scores, traffic


def _args(db: Path, study: str, logs: Path, scores: Path, *more: str) -> list[str]:
    return ["search", "run", "--storage", str(db), "--study", study, "--logs", str(logs),
            "--scores", str(scores), "--objective", OBJECTIVE, "--rounds", "1",
            "--population", "6", "--no-progress", *more]


def test_a_ragged_log_runs_end_to_end(tmp_path: Path) -> None:
    logs, scores, traffic = _files(tmp_path)
    back = LoggedTraffic.read(logs)
    assert back.fingerprint() == traffic.fingerprint() and back.valid is not None
    aligned = ScoreTable.read(scores, log=back).aligned(back)
    assert aligned.shape == (*back.item_ids.shape, 3) and (aligned[~back.valid] == 0).all()
    assert (aligned[back.valid] > 0).all()
    db = tmp_path / "s.db"
    result = invoke(_args(db, "ragged", logs, scores))
    assert result.exit_code == 0, result.output
    trials = optuna.load_study(study_name="ragged", storage=f"sqlite:///{db}").trials
    assert len(trials) >= 6 and all(t.value is not None and np.isfinite(t.value)
                                    for t in trials)


def test_a_shown_only_log_runs_with_slot_estimators_and_refuses_the_others(
        tmp_path: Path) -> None:
    logs, scores, _ = _files(tmp_path, shown_only=True)
    back = LoggedTraffic.read(logs)
    assert back.pscores is None and back.shown_pscores is not None
    db = tmp_path / "s.db"
    ok = invoke(_args(db, "slot", logs, scores, "--estimator", "slot_snips"))
    assert ok.exit_code == 0, ok.output
    refused = invoke(_args(db, "ips", logs, scores, "--estimator", "ips"))
    assert_user_error(refused, "the ips estimator needs the log's pscore_0..pscore_<K-1> "
                      "columns", "this log has only its pscore column",
                      "estimators that work with it: dm, slot_dr, slot_ips, slot_snips")
    assert "ips" not in optuna.get_all_study_names(f"sqlite:///{db}")  # nothing written


@pytest.mark.slow  # ~20 s: one epoch of an MMoE on 2 shared cores
def test_a_ranker_scores_a_ragged_log_into_a_table_that_aligns(tmp_path: Path) -> None:
    from ranker import TaskSpec, build_mmoe
    from ranker.train import TrainConfig, train
    from tuner.evaluation.ranker_scoring import default_feature_specs, ranker_rows, score_traffic

    world = MarketplaceWorld(MarketplaceConfig(n_requests=300, candidates="3:12", seed=2))
    traffic = world.generate()
    tasks = [TaskSpec("click"), TaskSpec("like")]
    model = build_mmoe(default_feature_specs(traffic), tasks)
    rows = ranker_rows(traffic, tasks)
    train(model, rows, rows, TrainConfig(epochs=1, batch_size=256), progress=False)
    table = score_traffic(model, traffic)
    back = ScoreTable.read(table.write(tmp_path / "s.parquet"), log=traffic)
    aligned = back.aligned(traffic)
    assert traffic.valid is not None
    assert (aligned[traffic.valid] > 0).all() and (aligned[~traffic.valid] == 0).all()
    np.testing.assert_allclose(aligned[..., 0], table.scores["click"])
