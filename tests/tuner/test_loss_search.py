"""Loss-weight search: real retraining, the ranker cache, the search file, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tests.tuner.conftest import DemoFiles
from tuner.cli import main
from tuner.evaluation.loss_objective import LossObjective
from tuner.evaluation.ranker_cache import RankerCache
from tuner.search_config import load_search_config, parse_search_config

TASKS = ("click", "conversion", "like")


def _write_config(folder: Path, demo: DemoFiles, space: str = "joint", *, init: str = "scratch",
                  extra: str = "") -> Path:
    warm = (f'base_checkpoint = "{demo.out / "ranker.pt"}"\nsteps = 3\n'
            if init == "warm" else "")
    text = f"""
[data]
logs = "{demo.logs}"

[objective]
click = 1.0
conversion = 10.0
like = 5.0

[search]
space = "{space}"
rounds = 1
population = 4
n_bootstrap = 50

[search.fusion]
control = {{ click = 1.0, conversion = 0.5, like = 0.5 }}
rounds = 2
population = 6

[ranker]
tasks = ["click", "conversion", "like"]
sample_spaces = {{ conversion = "after:click" }}
init = "{init}"
{warm}cache = "cache"

[ranker.model]
kind = "mmoe"
n_experts = 2
expert_hidden = [16]
tower_hidden = [8]

[ranker.train]
epochs = 1
batch_size = 512
{extra}"""
    path = folder / "search.toml"
    path.write_text(text)
    return path


@pytest.mark.slow
def test_two_loss_vectors_train_two_rankers_and_the_cache_stops_a_second_training(
        tmp_path: Path, demo_files: DemoFiles) -> None:
    config = load_search_config(_write_config(tmp_path, demo_files))
    cache = RankerCache(config)
    a = cache.run({"click": 1.0, "conversion": 1.0, "like": 1.0})
    b = cache.run({"click": 1.0, "conversion": 4.0, "like": 0.1})
    assert cache.trainings == 2 and a.trained and b.trained
    assert a.model_fingerprint != b.model_fingerprint
    sa, sb = a.scores_table(), b.scores_table()
    diff = max(float(np.abs(sa.scores[t] - sb.scores[t]).max()) for t in TASKS)
    assert diff > 1e-3, "two loss vectors gave the same score table"
    assert set(a.valid_metrics) == set(TASKS)
    # the same vector again, here and from a fresh cache object (another run): no training
    again = cache.run({"click": 1.0, "conversion": 4.0, "like": 0.1})
    fresh = RankerCache(config)
    third = fresh.run({"like": 0.1, "click": 1.0, "conversion": 4.0})
    assert (cache.trainings, cache.hits, fresh.trainings, fresh.hits) == (2, 1, 0, 1)
    assert not again.trained and not third.trained
    assert again.key == third.key == b.key
    assert third.model_fingerprint == b.model_fingerprint
    assert not list((tmp_path / "cache").glob(".tmp-*")), "a temporary entry was left behind"


def test_cache_key_changes_with_what_the_ranker_depends_on(
        tmp_path: Path, demo_files: DemoFiles) -> None:
    base = load_search_config(_write_config(tmp_path, demo_files))
    other_train = load_search_config(_write_config(tmp_path, demo_files, extra="lr = 0.01\n"))
    w = {"click": 1.0, "conversion": 2.0, "like": 1.0}
    key = RankerCache(base).key(w)
    assert RankerCache(other_train).key(w) != key
    assert RankerCache(base).key({**w, "like": 1.0 + 1e-12}) != key
    assert RankerCache(base).key(dict(reversed(list(w.items())))) == key


@pytest.mark.slow
def test_warm_start_trains_a_fixed_step_budget_from_the_base_checkpoint(
        tmp_path: Path, demo_files: DemoFiles) -> None:
    config = load_search_config(_write_config(tmp_path, demo_files, init="warm"))
    cache = RankerCache(config)
    run = cache.run({"click": 1.0, "conversion": 3.0, "like": 1.0})
    from ranker import load_checkpoint

    base, _ = load_checkpoint(demo_files.out / "ranker.pt")
    tuned, meta = load_checkpoint(run.checkpoint)
    assert meta["init"] == "warm"
    moved = [float((p - q).detach().abs().max()) for p, q in
             zip(base.parameters(), tuned.parameters(), strict=True)]
    assert max(moved) > 0, "warm start did not train"
    assert meta["loss_weights"]["conversion"] == 3.0


@pytest.mark.slow
def test_loss_space_evaluates_the_control_fusion_and_reports_auc_per_task(
        tmp_path: Path, demo_files: DemoFiles) -> None:
    config = load_search_config(_write_config(tmp_path, demo_files, space="loss"))
    objective = LossObjective(config)
    (result,) = objective(np.array([[1.0, 2.0, 0.5]]))
    assert result.low <= result.value <= result.high
    assert {f"auc:{t}" for t in TASKS} <= set(result.attrs)
    assert all(0.0 <= result.attrs[f"auc:{t}"] <= 1.0 for t in TASKS)
    fused = [result.attrs[f"fusion:{t}"] for t in TASKS]
    assert fused == [1.0, 0.5, 0.5]  # control: a loss search does not tune the fusion
    # row-wise and deterministic: the same row gives the same result (from the cache)
    (again,) = objective(np.array([[1.0, 2.0, 0.5]]))
    assert again == result and objective.cache.trainings == 1


def test_joint_space_tunes_fusion_weights_per_loss_trial(
        tmp_path: Path, demo_files: DemoFiles) -> None:
    config = load_search_config(_write_config(tmp_path, demo_files, space="joint"))
    objective = LossObjective(config)
    ws = objective.workspace(objective.cache.run(dict.fromkeys(TASKS, 1.0)))
    pick = objective.fusion_pick(ws)
    assert pick[0] == 1.0 and not np.allclose(pick, [1.0, 0.5, 0.5])
    control_value = objective(np.ones((1, 3)))[0]
    from tuner.evaluation.objective import FusionObjective

    at_control = FusionObjective.for_workspace(ws)(np.array([[1.0, 0.5, 0.5]]))[0]
    assert control_value.value == pytest.approx(
        FusionObjective.for_workspace(ws)(pick[None])[0].value)
    assert np.isfinite(at_control.value)


@pytest.mark.slow
def test_cli_joint_search_history_export_and_resume(tmp_path: Path,
                                                     demo_files: DemoFiles) -> None:
    config = _write_config(tmp_path, demo_files, space="joint")
    runner = CliRunner()

    def invoke(*args: str) -> str:
        result = runner.invoke(main, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    db = str(tmp_path / "s.db")
    invoke("search", "run", "--storage", db, "--study", "two", "--config", str(config),
           "--rounds", "2", "--no-progress")
    invoke("search", "run", "--storage", db, "--study", "split", "--config", str(config),
           "--no-progress")
    invoke("search", "run", "--storage", db, "--study", "split", "--rounds", "2",
           "--no-progress")
    invoke("search", "run", "--storage", db, "--study", "split", "--no-progress")  # at target
    rows = {name: json.loads(invoke("search", "history", "--storage", db, "--study", name,
                                    "--trials", "--json"))
            for name in ("two", "split")}
    assert len(rows["two"]) == 8
    assert [(r["params"], r["value"], r["fusion"], r["auc"]) for r in rows["two"]] == \
        [(r["params"], r["value"], r["fusion"], r["auc"]) for r in rows["split"]]
    first = rows["two"][0]
    assert set(first["params"]) == {"loss_conversion", "loss_like"}
    assert set(first["auc"]) == set(TASKS) and set(first["fusion"]) == set(TASKS)
    table = invoke("search", "history", "--storage", db, "--study", "two", "--trials")
    assert "auc:like" in table and "fusion:conversion" in table
    invoke("search", "history", "--storage", db, "--study", "two", "--plot",
           str(tmp_path / "plots"))
    for name in ("objective.png", "weights.png", "loss_trials.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = tmp_path / "w.json"
    invoke("search", "export", "--storage", db, "--study", "two", "--trial", "5",
           "--out", str(out))
    exported = json.loads(out.read_text())
    trial = rows["two"][5]
    assert exported["extra"]["loss_weights"]["conversion"] == trial["params"]["loss_conversion"]
    assert exported["weights"]["like"] == pytest.approx(trial["fusion"]["like"])
    assert Path(exported["extra"]["ranker_checkpoint"]).is_file()
    refused = runner.invoke(main, ["search", "compare", "--storage", db, "--study", "two"])
    assert refused.exit_code == 1 and "loss-weight study" in refused.output, refused.output


@pytest.mark.slow
def test_cli_fusion_space_from_a_search_file_trains_the_base_ranker_once(
        tmp_path: Path, demo_files: DemoFiles) -> None:
    config = _write_config(tmp_path, demo_files, space="joint")
    db = str(tmp_path / "f.db")
    args = ["search", "run", "--storage", db, "--config", str(config), "--space", "fusion",
            "--no-progress"]
    first = CliRunner().invoke(main, [*args, "--study", "f1"], catch_exceptions=False)
    second = CliRunner().invoke(main, [*args, "--study", "f2"], catch_exceptions=False)
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert "trained" in first.output and "cached" in second.output
    rows = json.loads(CliRunner().invoke(main, ["search", "history", "--storage", db, "--study",
                                                "f1", "--trials", "--json"]).output)
    assert len(rows) == 4 and set(rows[0]["params"]) == {"w_conversion", "w_like"}


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: t.replace('space = "joint"', 'space = "both"'), "valid: ['fusion', 'joint'"),
    (lambda t: t.replace("[ranker.train]", "[ranker.train]\nepoch = 2"), "unknown key(s)"),
    (lambda t: t.replace('init = "scratch"', 'init = "warm"'), "needs base_checkpoint"),
    (lambda t: t.replace("conversion = 0.5, like", "conversion = 9.0, like"),
     "outside the box"),
    (lambda t: t.replace('"conversion", "like"]', '"conversion", "like", "buy"]'),
     "no label column"),
])
def test_cli_bad_search_file_is_refused_before_any_study(
        tmp_path: Path, demo_files: DemoFiles, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    path = _write_config(tmp_path, demo_files)
    path.write_text(edit(path.read_text()))
    db = tmp_path / "bad.db"
    result = CliRunner().invoke(main, ["search", "run", "--storage", str(db), "--study", "x",
                                       "--config", str(path), "--no-progress"])
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
    if db.exists():
        import optuna

        assert "x" not in optuna.get_all_study_names(f"sqlite:///{db}")


def test_search_file_needs_a_ranker_for_loss_spaces() -> None:
    with pytest.raises(ValueError, match="needs a \\[ranker\\] table"):
        parse_search_config({"data": {"logs": "/x.parquet"}, "objective": {"click": 1.0},
                             "search": {"space": "loss"}})
    with pytest.raises(ValueError, match="splits lacks part"):
        parse_search_config({"data": {"logs": "/x.parquet", "splits": {"search": 0.5}},
                             "objective": {"click": 1.0}})


def test_options_that_the_search_file_owns_are_refused_beside_it(
        tmp_path: Path, demo_files: DemoFiles) -> None:
    path = _write_config(tmp_path, demo_files)
    result = CliRunner().invoke(main, ["search", "run", "--storage", str(tmp_path / "o.db"),
                                       "--study", "x", "--config", str(path),
                                       "--estimator", "ips"])
    assert result.exit_code == 1 and "--estimator" in result.output


@pytest.mark.slow
def test_two_workers_on_postgresql_share_a_loss_study(
        tmp_path: Path, demo_files: DemoFiles, pg_url: str) -> None:
    """`search run --workers 2` on a joint study: each worker trains the rankers of the
    members it claims; the trials equal a single process's on SQLite (own caches)."""
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    configs = [_write_config(folder, demo_files) for folder in (one, two)]

    def run(*args: str) -> None:
        result = CliRunner().invoke(main, ["search", "run", *args, "--rounds", "2",
                                           "--no-progress"], catch_exceptions=False)
        assert result.exit_code == 0, result.output

    run("--storage", str(one / "ref.db"), "--study", "ref", "--config", str(configs[0]))
    run("--storage", pg_url, "--study", "pg", "--config", str(configs[1]), "--workers", "2",
        "--chunk", "2")
    ref = json.loads(CliRunner().invoke(main, ["search", "history", "--storage",
                                               str(one / "ref.db"), "--study", "ref",
                                               "--trials", "--json"]).output)
    got = json.loads(CliRunner().invoke(main, ["search", "history", "--storage", pg_url,
                                               "--study", "pg", "--trials", "--json"]).output)
    assert len(got) == len(ref) == 8
    key = sorted(got, key=lambda r: (r["round"], r["member"]))
    want = sorted(ref, key=lambda r: (r["round"], r["member"]))
    assert [r["params"] for r in key] == [r["params"] for r in want]
    assert [r["value"] for r in key] == pytest.approx([r["value"] for r in want], rel=1e-6)
    assert len(list((two / "cache").iterdir())) == 8  # the workers trained every member
