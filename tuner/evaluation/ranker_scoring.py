"""From logged traffic to ranker rows and back: the only place both packages meet.

The ranker learns from *shown* impressions. The slot a candidate was shown in
is itself a feature (``position``): the model learns the position bias there
instead of in the item features, and every candidate is scored as if shown in
the top slot, which is what ``E[label | examined]`` asks for.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ranker import (
    CategoricalFeature,
    FeatureSpec,
    MultiTaskModel,
    NumericFeature,
    RankerData,
    TaskSpec,
    predict,
)
from simulator.datasets import ParquetDataset
from simulator.files import atomic_folder, atomic_write
from simulator.logs import FEATURE_PREFIX, LoggedTraffic
from tuner.evaluation.dataset_io import dataset_meta
from tuner.evaluation.scores import ScoreTable

__all__ = ["candidate_features", "default_feature_specs", "partitioned_output", "ranker_rows",
           "score_dataset", "score_traffic"]

POSITION = "position"


def default_feature_specs(traffic: LoggedTraffic, dim: int = 16) -> list[FeatureSpec]:
    """Feature specs for a log: ids and integer features categorical, the rest numeric."""
    specs: list[FeatureSpec] = [
        CategoricalFeature("user_id", int(traffic.user_ids.max()) + 1, dim),
        CategoricalFeature("item_id", int(traffic.item_ids.max()) + 1, dim),
        CategoricalFeature(POSITION, traffic.slate_size, 4),
    ]
    for name, values in traffic.features.items():
        if values.dtype.kind in "iu":
            specs.append(CategoricalFeature(name, int(values.max()) + 1, min(dim, 8)))
        else:
            specs.append(NumericFeature(name))
    return specs


def candidate_features(traffic: LoggedTraffic, mask: np.ndarray | None = None,
                       position: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """1-D feature arrays of the candidates where ``mask`` is True (default: all).

    ``position`` overrides the logged slot (default: the logged slot, 0 if not shown).
    """
    mask = np.ones(traffic.item_ids.shape, dtype=bool) if mask is None else mask
    slot = np.where(traffic.shown, traffic.positions, 0) if position is None else position
    feats = {
        "user_id": np.broadcast_to(traffic.user_ids[:, None], mask.shape)[mask],
        "item_id": traffic.item_ids[mask],
        POSITION: slot[mask],
    }
    feats.update({k: v[mask] for k, v in traffic.features.items()})
    return feats


def ranker_rows(traffic: LoggedTraffic, tasks: Sequence[TaskSpec]) -> RankerData:
    """Training rows: the shown impressions with their labels.

    A task whose label depends on another (``after:click``) gets its labels
    as logged; the ranker's sample space keeps its loss to the right rows.
    """
    shown = traffic.shown
    missing = [t.name for t in tasks if t.name not in traffic.labels]
    if missing:
        raise ValueError(f"ranker task(s) {missing} have no label column in the log; "
                         f"label_<task> columns: {list(traffic.tasks)}")
    return RankerData(
        features=candidate_features(traffic, shown),
        labels={t.name: traffic.labels[t.name][shown] for t in tasks},
    )


def score_traffic(model: MultiTaskModel, traffic: LoggedTraffic) -> ScoreTable:
    """Every logged candidate scored as if shown in the top slot (``p_<task>`` per task).

    The padding of a ragged log is not scored (its table row is item ``-1``, score 0).
    """
    top = np.zeros_like(traffic.positions)
    if traffic.valid is None:
        probs = predict(model, candidate_features(traffic, position=top))
        shape = traffic.item_ids.shape
        return ScoreTable(traffic.request_ids, traffic.item_ids,
                          {t.name: probs[t.name].reshape(shape) for t in model.tasks})
    valid = traffic.valid
    probs = predict(model, candidate_features(traffic, valid, position=top))

    def padded(values: np.ndarray) -> np.ndarray:
        out = np.zeros(valid.shape)
        out[valid] = values
        return out

    return ScoreTable(traffic.request_ids, np.where(valid, traffic.item_ids, -1),
                      {t.name: padded(probs[t.name]) for t in model.tasks})


def partitioned_output(logs: str | os.PathLike[str], out: str | os.PathLike[str]) -> bool:
    """Whether :func:`score_dataset` writes a folder of score files (one per log file) at
    ``out``: when the log is a folder and ``out`` does not end in ``.parquet``."""
    return Path(logs).is_dir() and Path(out).suffix != ".parquet"


def score_dataset(model: MultiTaskModel, logs: str | os.PathLike[str], out: str | os.PathLike[str],
                  chunk_rows: int = 200_000, metadata: Mapping[str, str] | None = None) -> int:
    """Score every candidate of a log file or folder, a chunk of whole requests at a time
    (:func:`score_traffic` on each), so memory is set by ``chunk_rows``, not by the log.

    A folder log (hive partitions included) gives a partitioned score dataset: one score
    file per log file at the same path relative to the log folder, under the folder
    ``out`` (``logs/date=2026-11-30/part-0.parquet`` -> ``out/date=2026-11-30/part-0.parquet``),
    which a streamed replay reads file against file. A single-file log, or an ``out``
    ending in ``.parquet``, gives one score table. Each file's rows (``request_id,
    item_id, p_<task>...``, one row group a chunk) are its log file's rows in their order,
    which a streamed replay aligns without matching. Everything is written under a
    temporary name beside ``out`` (a file or a folder) renamed into place only when every
    file is whole: a log refused half-way leaves ``out`` as it was (an existing ``out`` is
    replaced).

    Args:
        model: the ranker.
        logs: a log file or folder (:class:`~simulator.datasets.ParquetDataset`).
        out: the score table or folder to write (:func:`partitioned_output` says which).
        chunk_rows: log rows scored at a time.
        metadata: extra schema metadata of every file (e.g. the checkpoint's fingerprint).

    Returns:
        The rows written.

    Raises:
        DatasetError, LogValidationError: the log breaks a layout rule or its own checks,
            naming the file and row (checked before or as its chunk is read).
        ValueError: the model needs a feature the log lacks.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if chunk_rows < 1:
        raise ValueError(f"chunk rows must be >= 1, got {chunk_rows}")
    dataset = ParquetDataset(logs, batch_rows=chunk_rows)
    dataset.scan()  # layout rules before anything is scored
    examination, kinds, _ = dataset_meta(dataset)
    has = {"user_id", "item_id", POSITION} | {
        n[len(FEATURE_PREFIX):] for n in dataset.schema().names if n.startswith(FEATURE_PREFIX)}
    missing = [f.name for f in model.features if f.name not in has]
    if missing:
        raise ValueError(f"the ranker needs feature(s) {missing} that log {logs} lacks; it "
                         f"has {sorted(has)} (feature_<name> columns, ids and position)")
    tasks = [t.name for t in model.tasks]
    schema = pa.schema([("request_id", pa.int64()), ("item_id", pa.int64()),
                        *((f"p_{t}", pa.float64()) for t in tasks)],
                       metadata={k: str(v) for k, v in (metadata or {}).items()})
    written = 0

    def write_files(writer: Any, files: list[int]) -> None:
        nonlocal written
        for columns, source in dataset.chunks(chunk_rows, files=files):
            traffic = LoggedTraffic.from_columns(columns, examination, source, kinds)
            table = score_traffic(model, traffic)
            cells = (np.ones(traffic.item_ids.shape, dtype=bool) if traffic.valid is None
                     else traffic.valid)  # row-major: the log's rows in their order
            cols = {"request_id": np.repeat(traffic.request_ids, cells.sum(axis=1)),
                    "item_id": traffic.item_ids[cells]}
            cols.update({f"p_{t}": table.scores[t][cells] for t in tasks})
            writer.write_table(pa.table(cols, schema=schema))
            written += len(cols["item_id"])

    def write_one(tmp: str) -> None:
        with pq.ParquetWriter(tmp, schema) as writer:
            write_files(writer, list(range(len(dataset.files))))

    def write_folder(tmp: Path) -> None:
        root = Path(logs)
        for i, file in enumerate(dataset.files):
            path = tmp / os.path.relpath(file, root)  # hive folders kept
            path.parent.mkdir(parents=True, exist_ok=True)
            with pq.ParquetWriter(path, schema) as writer:  # an empty log file: no rows
                write_files(writer, [i])

    if partitioned_output(logs, out):
        atomic_folder(out, write_folder)
    else:
        atomic_write(Path(out), write_one)
    return written
