"""Commands ``ranker train|evaluate|score``: the multi-task ranker on KuaiRand from a TOML file.

The run file (:mod:`ranker.config_file`) picks model, experts, head, balancer,
tasks and training settings; these commands compose the ranker's parts from it
and report per-task AUC, GAUC (per user), logloss and calibration.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from simulator.files import atomic_write
from tuner.cli._common import dump, stage, user_errors
from tuner.cli._format import table
from tuner.cli._track import MLFLOW, log_ranker

if TYPE_CHECKING:
    from ranker import MultiTaskModel
    from ranker.config_file import RankerRunConfig
    from ranker.kuairand import KuaiRandData, KuaiRandSplit

# the ranker (and torch) is imported in the functions that use it: 'fusiontune --help'
# and the search commands never load it

__all__ = ["ranker"]

SPLITS = ("train", "valid", "test")


def data_fingerprint(data: KuaiRandData) -> str:
    """SHA-256 (16 hex digits) of every split's feature and label arrays, names and dtypes.

    Two loads of the same files give the same fingerprint; any change of rows,
    features, encodings or tasks changes it.
    """
    h = hashlib.sha256()
    for name, split in data.splits().items():
        h.update(f"split {name} {split.n_rows}|".encode())
        for kind, arrays in (("f", split.data.features), ("y", split.data.labels)):
            for key in sorted(arrays):
                arr = np.ascontiguousarray(arrays[key])
                h.update(f"{kind}:{key}:{arr.dtype}|".encode())
                h.update(arr.tobytes())
    return h.hexdigest()[:16]


def _load_data(config: RankerRunConfig, tasks: tuple[str, ...], progress: bool) -> KuaiRandData:
    from ranker.kuairand import load_kuairand

    with stage(f"loading KuaiRand-Pure ({config.data.path or 'default path'})", progress):
        return load_kuairand(config.data.path, tasks=tasks,
                             history_len=config.data.history_len)


def _train_rows(config: RankerRunConfig, split: KuaiRandSplit) -> KuaiRandSplit:
    """The train split, subsampled to ``[data] max_train_rows`` (seeded by ``[train] seed``)."""
    cap = config.data.max_train_rows
    if cap is None or cap >= split.n_rows:
        return split
    rng = np.random.default_rng(config.train.seed)
    return split.take(np.sort(rng.choice(split.n_rows, cap, replace=False)))


def split_metrics(model: MultiTaskModel, split: KuaiRandSplit) -> dict[str, dict[str, float]]:
    """Task -> ``auc``, ``gauc``, ``logloss``, ``calibration``, ``rows``, ``users`` on a split.

    Each task is measured over its sample space (``after:click``: clicked rows);
    GAUC is the row-weighted mean AUC over users with both labels.
    """
    from ranker import evaluate, predict
    from ranker.gauc import task_gauc

    metrics = evaluate(model, split.data)
    gaucs = task_gauc(
        split.data.labels, predict(model, split.data.features), split.user_id, model.tasks
    )
    return {
        t.name: {
            "auc": metrics[t.name].auc,
            "gauc": gaucs[t.name].value,
            "logloss": metrics[t.name].logloss,
            "calibration": metrics[t.name].calibration,
            "rows": metrics[t.name].n,
            "users": gaucs[t.name].n_groups,
        }
        for t in model.tasks
    }


def metrics_table(model: MultiTaskModel, metrics: Mapping[str, Mapping[str, float]]) -> str:
    """One row per task: sample space, rows, AUC, GAUC (users), logloss, calibration."""
    rows = [
        [
            t.name,
            t.sample_space or "all",
            int(metrics[t.name]["rows"]),
            float(metrics[t.name]["auc"]),
            float(metrics[t.name]["gauc"]),
            int(metrics[t.name]["users"]),
            float(metrics[t.name]["logloss"]),
            float(metrics[t.name]["calibration"]),
        ]
        for t in model.tasks
    ]
    header = ["task", "space", "rows", "AUC", "GAUC", "users", "logloss", "calibration"]
    return table(header, rows)


def _checkpoint_config(meta: Mapping[str, Any], path: Path) -> RankerRunConfig:
    from ranker.config_file import parse_run_config

    if "config" not in meta:
        raise ValueError(f"checkpoint {path} holds no run config; pass --config FILE")
    try:
        return parse_run_config(meta["config"])
    except ValueError as err:
        raise ValueError(f"checkpoint {path}: its stored config is invalid here: {err}") from None


def _open(checkpoint: Path, config_path: Path | None,
          ) -> tuple[MultiTaskModel, dict[str, Any], RankerRunConfig]:
    from ranker import load_checkpoint
    from ranker.config_file import load_run_config

    model, meta = load_checkpoint(checkpoint)
    config = (_checkpoint_config(meta, checkpoint) if config_path is None
              else load_run_config(config_path))
    return model, meta, config


def _check_fingerprint(meta: Mapping[str, Any], data: KuaiRandData, checkpoint: Path) -> str:
    fp = data_fingerprint(data)
    stored = meta.get("data_fingerprint")
    if stored is not None and stored != fp:
        click.echo(f"warning: the data differ from those {checkpoint} was trained on "
                   f"(fingerprint {fp}, checkpoint {stored})", err=True)
    return fp


_CONFIG = click.option(
    "--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
    help="Run file (TOML): [model], [balancer], [train], [data].")
_CHECKPOINT = click.option(
    "--checkpoint", type=click.Path(path_type=Path, dir_okay=False), default=Path("ranker.pt"),
    show_default=True, help="Checkpoint file.")
_SPLIT = click.option("--split", type=click.Choice(SPLITS), default="test", show_default=True,
                      help="Date split: train 04-25..05-04, valid 05-05..06, test 05-07..08.")
_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
_PROGRESS = click.option("--progress/--no-progress", default=True,
                         help="Progress bars and notes on stderr.")


@click.group()
def ranker() -> None:
    """Train, evaluate and score the multi-task ranker on KuaiRand-Pure from a run file."""


@ranker.command("train")
@_CONFIG
@_CHECKPOINT
@_JSON
@_PROGRESS
@MLFLOW
@user_errors
def train_cmd(config_path: Path | None, checkpoint: Path, as_json: bool, progress: bool,
              mlflow_uri: str | None = None) -> None:
    """Train a ranker, save it with its config, data fingerprint and metrics; print test metrics.

    Early stopping uses the valid days; the table is on the test days.
    """
    from ranker import build_model, save_checkpoint
    from ranker import train as train_model
    from ranker.config_file import load_run_config

    if config_path is None:
        raise ValueError("ranker train needs --config FILE (see configs/kuairand_mmoe.toml)")
    config = load_run_config(config_path)
    if not checkpoint.parent.is_dir():
        raise FileNotFoundError(
            f"cannot write checkpoint {checkpoint}: folder {checkpoint.parent} does not exist")
    data = _load_data(config, config.data.tasks, progress)
    fingerprint = data_fingerprint(data)
    train_split = _train_rows(config, data.train)
    model = build_model(config.model.kind, data.features, data.tasks, config.model.config,
                        seed=config.train.seed)
    balancer = config.balancer.build([t.name for t in data.tasks])
    result = train_model(model, train_split.data, data.valid.data, config.train,
                         progress=progress, balancer=balancer)
    test = split_metrics(result.model, data.test)
    valid = split_metrics(result.model, data.valid)
    meta = {
        "config": config.to_dict(),
        "data_fingerprint": fingerprint,
        "train_rows": train_split.n_rows,
        "best_epoch": result.best_epoch,
        "history": result.history,
        "metrics": {"valid": valid, "test": test},
    }
    model_fp = save_checkpoint(checkpoint, result.model, meta)
    log_ranker(mlflow_uri, checkpoint, model_fp, meta)
    if as_json:
        dump({"checkpoint": str(checkpoint), "fingerprint": model_fp,
                    "data_fingerprint": fingerprint, "train_rows": train_split.n_rows,
                    "best_epoch": result.best_epoch, "epochs_run": len(result.history),
                    "split": "test", "metrics": test})
        return
    click.echo(f"{config.model.kind} ({config.model.config.head} head, balancer "
               f"{config.balancer.name}): {train_split.n_rows:,} train rows, "
               f"best epoch {result.best_epoch} of {len(result.history)}")
    click.echo(f"checkpoint {checkpoint} (model {model_fp}, data {fingerprint})\n")
    click.echo(f"test days ({data.test.n_rows:,} rows):")
    click.echo(metrics_table(result.model, test))


@ranker.command("evaluate")
@_CONFIG
@_CHECKPOINT
@_SPLIT
@_JSON
@_PROGRESS
@user_errors
def evaluate_cmd(config_path: Path | None, checkpoint: Path, split: str, as_json: bool,
                 progress: bool) -> None:
    """Per-task metrics of a checkpoint on a split.

    The data are found from --config, else from the run config stored in the checkpoint.
    """
    model, meta, config = _open(checkpoint, config_path)
    data = _load_data(config, tuple(t.name for t in model.tasks), progress)
    fp = _check_fingerprint(meta, data, checkpoint)
    rows = data.splits()[split]
    metrics = split_metrics(model, rows)
    if as_json:
        dump({"checkpoint": str(checkpoint), "fingerprint": meta["fingerprint"],
                    "data_fingerprint": fp, "split": split, "metrics": metrics})
        return
    click.echo(f"{checkpoint} ({model.spec.arch}) on the {split} days ({rows.n_rows:,} rows):")
    click.echo(metrics_table(model, metrics))


@ranker.command("score")
@_CONFIG
@_CHECKPOINT
@_SPLIT
@click.option("--logs", type=click.Path(path_type=Path, exists=True),
              help="Score this log (a Parquet file or a folder of them) instead of a "
                   "KuaiRand split, streamed in chunks of whole requests.")
@click.option("--chunk-rows", type=click.IntRange(min=1), default=200_000, show_default=True,
              help="With --logs: log rows scored at a time (sets the memory used).")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Score table to write (Parquet); with --logs a folder of them (one per "
                   "log file, same paths) unless the log is one file or --out ends in "
                   ".parquet.")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@_JSON
@_PROGRESS
@user_errors
def score_cmd(config_path: Path | None, checkpoint: Path, split: str, logs: Path | None,
              chunk_rows: int, out: Path, force: bool, as_json: bool, progress: bool) -> None:
    """Write a score table for a split: row_id, user_id, video_id, time_ms, p_<task>...

    ``row_id`` is the row's index in the split (sorted by time). For an
    ``after:x`` task the score is conditional, p(task | x).

    With --logs, score every candidate of a log as if shown in the top slot instead:
    request_id, item_id, p_<task>..., the log's rows in its order, read and written a
    chunk at a time (a log of any size). A folder log gives a folder of score files, one
    per log file at the same relative path (hive partitions included), unless --out ends
    in .parquet; --out is renamed into place only when every file is whole.
    """
    if not out.parent.is_dir():
        raise FileNotFoundError(f"cannot write {out}: folder {out.parent} does not exist")
    if (out.exists() or out.is_symlink()) and not force:
        raise ValueError(f"--out {out} exists; give --force to overwrite it")
    if logs is not None:
        _score_logs(checkpoint, config_path, split, logs, chunk_rows, out, as_json, progress)
        return
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; a split's score table needs a file name "
                         "such as scores.parquet")
    from ranker import predict

    model, meta, config = _open(checkpoint, config_path)
    data = _load_data(config, tuple(t.name for t in model.tasks), progress)
    _check_fingerprint(meta, data, checkpoint)
    rows = data.splits()[split]
    with stage(f"scoring {rows.n_rows:,} rows ({split} days)", progress):
        probs = predict(model, rows.data.features)
    columns: dict[str, Any] = {
        "row_id": np.arange(rows.n_rows, dtype=np.int64),
        "user_id": rows.user_id.astype(np.int64),
        "video_id": rows.video_id.astype(np.int64),
        "time_ms": rows.time_ms.astype(np.int64),
    }
    columns.update({f"p_{t.name}": probs[t.name] for t in model.tasks})
    meta_kv = {"fusiontune.checkpoint": meta["fingerprint"], "fusiontune.split": split}
    tbl = pa.table(columns).replace_schema_metadata(meta_kv)
    # a failed write never leaves a half-written table under the final name
    atomic_write(out, lambda tmp: pq.write_table(tbl, tmp))
    if as_json:
        dump({"out": str(out), "checkpoint": str(checkpoint), "fingerprint": meta["fingerprint"],
              "split": split, "rows": rows.n_rows, "tasks": [t.name for t in model.tasks]})
        return
    click.echo(f"wrote {rows.n_rows:,} rows x {len(model.tasks)} tasks ({split} days) to {out}")


def _score_logs(checkpoint: Path, config_path: Path | None, split: str, logs: Path,
                chunk_rows: int, out: Path, as_json: bool, progress: bool) -> None:
    """``ranker score --logs``: a log dataset through the ranker, chunk by chunk."""
    from click.core import ParameterSource

    from ranker import load_checkpoint
    from simulator.datasets import ParquetDataset
    from tuner.evaluation.ranker_scoring import partitioned_output, score_dataset

    given = click.get_current_context().get_parameter_source("split")
    if config_path is not None or given is ParameterSource.COMMANDLINE:
        raise ValueError("--logs scores a log with the checkpoint alone: --config and --split "
                         "choose KuaiRand data and cannot be given with it")
    if logs.is_dir() and out.resolve().is_relative_to(logs.resolve()):
        raise ValueError(f"--out {out} lies inside the log folder {logs}: its score files "
                         "would be read as log files; write them beside it")
    if out.is_dir() and not partitioned_output(logs, out):
        raise ValueError(f"--out {out} is a folder; one score table (a file log, or --out "
                         "ending in .parquet) needs a file name such as scores.parquet")
    model, meta = load_checkpoint(checkpoint)
    with stage(f"scoring the candidates of {logs} in chunks of {chunk_rows:,} rows", progress):
        rows = score_dataset(model, logs, out, chunk_rows, {
            "fusiontune.checkpoint": meta["fingerprint"], "fusiontune.logs": str(logs)})
    tasks = [t.name for t in model.tasks]
    if as_json:
        dump({"out": str(out), "checkpoint": str(checkpoint), "fingerprint": meta["fingerprint"],
              "logs": str(logs), "rows": rows, "tasks": tasks,
              "partitioned": partitioned_output(logs, out)})
        return
    files = (f"{len(ParquetDataset(logs).files)} files under " if partitioned_output(logs, out)
             else "")
    click.echo(f"wrote {rows:,} rows x {len(tasks)} tasks (the candidates of {logs}) to "
               f"{files}{out}")
