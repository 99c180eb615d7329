"""``fusiontune ranker train|evaluate|score`` and the run file they read.

Data-free tests check the run-file schema (every bad key or value is a one-line
error naming it, exit 1) and the help. The tests on real KuaiRand-Pure train a
tiny model (a few thousand rows, one epoch) and need ``../shared/data``; they
are skipped, with the reason, where it is absent, except under ``CI=true``,
where its absence fails them.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from ranker.config_file import load_run_config, parse_run_config
from ranker.kuairand import resolve_path
from tuner.cli import main

REPO = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI") == "true"

TINY = """
[model]
kind = "ple"
expert_kinds = ["mlp", "dcn"]
expert_hidden = [16]
tower_hidden = [8]
head = "esmm"

[balancer]
name = "uncertainty"

[train]
epochs = 1
batch_size = 1024

[data]
tasks = ["click", "long_view", "like"]
max_train_rows = 3000
"""


def invoke(args: list[str]) -> Result:
    return CliRunner().invoke(main, args, catch_exceptions=False)


def write(tmp_path: Path, text: str, name: str = "run.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ---- data-free ------------------------------------------------------------------------------


@pytest.mark.parametrize("example", sorted((REPO / "configs").glob("kuairand_*.toml")))
def test_shipped_examples_load(example: Path) -> None:
    config = load_run_config(example)
    assert parse_run_config(config.to_dict()) == config


def test_example_configs_exist() -> None:
    names = {p.name for p in (REPO / "configs").glob("*.toml")}
    assert {"kuairand_mmoe.toml", "kuairand_ple_esmm.toml"} <= names


def test_round_trip_and_defaults() -> None:
    config = parse_run_config({"model": {"kind": "cgc", "head": "chain"},
                               "balancer": {"name": "dwa", "options": {"temperature": 1.0}}})
    assert config.model.config.head == "chain"
    assert config.balancer.build(list(config.data.tasks)).current_weights() == {
        t: 1.0 for t in config.data.tasks}
    assert parse_run_config(config.to_dict()) == config
    assert config.train.epochs == 5 and config.data.source == "kuairand"
    assert config.data.history_len == 10 and config.train.precision == "fp32"
    other = parse_run_config({"model": {"kind": "ple"}, "train": {"precision": "bf16"},
                              "data": {"history_len": 5},
                              "balancer": {"name": "gradnorm", "options": {"layer": "all"}}})
    assert other.train.precision == "bf16" and other.data.history_len == 5
    assert other.balancer.build(list(other.data.tasks)).gradient_scope == "all"
    assert parse_run_config(other.to_dict()) == other


def test_relative_data_path_is_taken_from_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[model]\nkind = "mmoe"\n[data]\npath = "data/kr"\n')
    assert load_run_config(path).data.path == str((tmp_path / "data" / "kr").resolve())


BAD_CONFIGS = [
    ('[model]\nkind = "mmoe"\nn_expert = 2\n', r"\[model\] .*unknown key\(s\) \['n_expert'\]"),
    ('[model]\nkind = "transformer"\n', r"\[model\] kind 'transformer' unknown; valid: \["),
    ("[train]\nepochs = 1\n", r"needs a \[model\] table with kind"),
    ('[model]\nkind = "mmoe"\nn_experts = 0\n', r"\[model\] n_experts must be an int >= 1"),
    ('[model]\nkind = "mmoe"\ndropout = "high"\n', r"\[model\] dropout must be a number"),
    ('[model]\nkind = "mmoe"\nexpert_kinds = ["mlp", "rnn"]\n', r"\[model\] expert_kinds must"),
    ('[model]\nkind = "mmoe"\nhead = "esmm2"\n', r"\[model\] head must be one of"),
    ('[model]\nkind = "mmoe"\ntransfer = [["click", "nope"]]\n', r"\[model\] does not fit"),
    ('[model]\nkind = "mmoe"\n[train]\nepochs = 0\n', r"\[train\] epochs must be an int >= 1"),
    ('[model]\nkind = "mmoe"\n[train]\nlr = "fast"\n', r"\[train\] lr must be a number"),
    ('[model]\nkind = "mmoe"\n[train]\nsteps = 3\n', r"\[train\] has unknown key.*'steps'"),
    ('[model]\nkind = "mmoe"\n[train]\nloss_weights = {click = 2.0}\n',
     r"\[train\] loss_weights .*\[balancer\]"),
    ('[model]\nkind = "mmoe"\n[balancer]\nname = "adam"\n', r"\[balancer\] name 'adam' unknown"),
    ('[model]\nkind = "mmoe"\n[balancer]\nname = "dwa"\noptions = {temp = 1.0}\n',
     r"\[balancer\] options \['temp'\].*valid options: \['temperature'\]"),
    ('[model]\nkind = "mmoe"\n[balancer]\nname = "static"\noptions = {weights = {cvr = 1.0}}\n',
     r"\[balancer\] options of 'static'.*\['cvr'\]"),
    ('[model]\nkind = "mmoe"\n[balancer]\nweight = 1\n', r"\[balancer\] has unknown key"),
    ('[model]\nkind = "mmoe"\n[data]\nsource = "movielens"\n', r"\[data\] source 'movielens'"),
    ('[model]\nkind = "mmoe"\n[data]\ntasks = ["click", "watch"]\n', r"\[data\] tasks .*watch"),
    ('[model]\nkind = "mmoe"\n[data]\ntasks = ["long_view"]\n', r"\[data\] tasks: .*long_view"),
    ('[model]\nkind = "mmoe"\n[data]\ntasks = "click"\n', r"\[data\] tasks must be a list"),
    ('[model]\nkind = "mmoe"\n[data]\nmax_train_rows = 0\n', r"\[data\] max_train_rows must"),
    ('[model]\nkind = "mmoe"\n[data]\nrows = 5\n', r"\[data\] has unknown key\(s\) \['rows'\]"),
    ('[model]\nkind = "mmoe"\n[data]\nhistory_len = 0\n', r"\[data\] history_len must be"),
    ('[model]\nkind = "mmoe"\n[train]\nprecision = "fp16"\n', r"\[train\] precision must be one"),
    ('[model]\nkind = "mmoe"\n[balancer]\nname = "gradnorm"\noptions = {layer = "first"}\n',
     r"\[balancer\] options of 'gradnorm'.*layer must be one of \['last', 'all'\]"),
    ('[model]\nkind = "mmoe"\n[output]\ndir = "x"\n', r"unknown key\(s\) \['output'\]"),
    ("[model\nkind =", r"not valid TOML"),
]


@pytest.mark.parametrize(("text", "pattern"), BAD_CONFIGS)
def test_bad_config_is_a_one_line_error(tmp_path: Path, text: str, pattern: str) -> None:
    path = write(tmp_path, text)
    result = invoke(["ranker", "train", "--config", str(path), "--checkpoint",
                     str(tmp_path / "m.pt"), "--no-progress"])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {path}: "), result.output
    assert "Traceback" not in result.output
    assert re.search(pattern, lines[0]), lines[0]
    assert not (tmp_path / "m.pt").exists()


def test_missing_config_file(tmp_path: Path) -> None:
    result = invoke(["ranker", "train", "--config", str(tmp_path / "none.toml")])
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: config file {tmp_path / 'none.toml'} does not exist"


def test_train_needs_a_config() -> None:
    result = invoke(["ranker", "train"])
    assert result.exit_code == 1 and "needs --config FILE" in result.output


def test_missing_checkpoint(tmp_path: Path) -> None:
    for cmd in (["evaluate"], ["score", "--out", str(tmp_path / "s.parquet")]):
        result = invoke(["ranker", *cmd, "--checkpoint", str(tmp_path / "none.pt")])
        assert result.exit_code == 1
        assert result.output.strip() == f"Error: checkpoint {tmp_path / 'none.pt'} does not exist"


def test_checkpoint_folder_must_exist_before_training(tmp_path: Path) -> None:
    path = write(tmp_path, TINY)
    result = invoke(["ranker", "train", "--config", str(path),
                     "--checkpoint", str(tmp_path / "no" / "m.pt")])
    assert result.exit_code == 1 and "does not exist" in result.output


@pytest.mark.parametrize("cmd", [[], ["train"], ["evaluate"], ["score"]])
def test_help(cmd: list[str]) -> None:
    result = invoke(["ranker", *cmd, "--help"])
    assert result.exit_code == 0
    assert "Usage: " in result.output
    if cmd == ["train"]:
        assert "--config" in result.output and "--no-progress" in result.output


def test_ranker_is_listed_in_the_main_help() -> None:
    assert "ranker" in invoke(["--help"]).output


# ---- on real KuaiRand-Pure ----------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """One tiny ``ranker train --json`` run: (config file, checkpoint, its JSON output).

    Progress is on (the default): its lines go to stderr, which is no terminal here, so
    stdout is the JSON alone and no bar draws carriage returns.
    """
    try:
        resolve_path()
    except FileNotFoundError as err:
        if IN_CI:
            pytest.fail(f"CI=true and the KuaiRand-Pure data is missing: {err}")
        pytest.skip(f"KuaiRand-Pure data not found: {err}")
    tmp = tmp_path_factory.mktemp("ranker_cli")
    config = write(tmp, TINY)
    checkpoint = tmp / "tiny.pt"
    result = invoke(["ranker", "train", "--config", str(config), "--checkpoint",
                     str(checkpoint), "--json"])
    assert result.exit_code == 0, result.output
    assert "\r" not in result.stderr and "epoch 1: train_loss" in result.stderr
    return config, checkpoint, json.loads(result.stdout)


@pytest.mark.slow
@pytest.mark.realdata
def test_train_writes_checkpoint_with_config_fingerprint_metrics(trained: tuple) -> None:
    from ranker import load_checkpoint

    config, checkpoint, out = trained
    assert out["train_rows"] == 3000 and out["split"] == "test"
    assert set(out["metrics"]) == {"click", "long_view", "like"}
    for m in out["metrics"].values():
        assert {"auc", "gauc", "logloss", "calibration", "rows", "users"} <= set(m)
        assert 0.0 <= m["auc"] <= 1.0 and m["logloss"] > 0
    # long_view is measured on clicked rows only
    assert out["metrics"]["long_view"]["rows"] < out["metrics"]["click"]["rows"]
    model, meta = load_checkpoint(checkpoint)
    assert model.spec.arch == "ple" and type(model.heads).__name__ == "ESMMHeads"
    assert parse_run_config(meta["config"]) == load_run_config(config)
    assert meta["data_fingerprint"] == out["data_fingerprint"]
    assert meta["metrics"]["test"]["click"]["auc"] == pytest.approx(
        out["metrics"]["click"]["auc"])


@pytest.mark.slow
@pytest.mark.realdata
def test_evaluate_repeats_the_training_metrics(trained: tuple) -> None:
    config, checkpoint, out = trained
    result = invoke(["ranker", "evaluate", "--checkpoint", str(checkpoint), "--json",
                     "--no-progress"])
    assert result.exit_code == 0, result.output
    again = json.loads(result.output)
    assert again["data_fingerprint"] == out["data_fingerprint"]
    for task, m in out["metrics"].items():
        assert again["metrics"][task]["auc"] == pytest.approx(m["auc"])
        assert again["metrics"][task]["gauc"] == pytest.approx(m["gauc"])
    table = invoke(["ranker", "evaluate", "--config", str(config), "--checkpoint",
                    str(checkpoint), "--split", "valid", "--no-progress"])
    assert table.exit_code == 0, table.output
    assert "valid days" in table.output and "GAUC" in table.output
    assert "after:click" in table.output


@pytest.mark.slow
@pytest.mark.realdata
def test_score_writes_a_table_per_row(trained: tuple, tmp_path: Path) -> None:
    config, checkpoint, _ = trained
    out = tmp_path / "scores.parquet"
    result = invoke(["ranker", "score", "--config", str(config), "--checkpoint",
                     str(checkpoint), "--split", "valid", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {  # stdout is the JSON; stderr says what it scored
        "out": str(out), "checkpoint": str(checkpoint), "fingerprint": json.loads(
            result.stdout)["fingerprint"], "split": "valid", "rows": 26_683,
        "tasks": ["click", "long_view", "like"]}
    assert re.search(r"scoring 26,683 rows \(valid days\): done in \d+\.\d s", result.stderr)
    table = pq.read_table(out)
    assert table.column_names == ["row_id", "user_id", "video_id", "time_ms", "p_click",
                                  "p_long_view", "p_like"]
    assert table.num_rows == 26_683
    p = table["p_click"].to_numpy()
    assert ((p > 0) & (p < 1)).all()
    assert [f.name for f in tmp_path.iterdir()] == ["scores.parquet"]
