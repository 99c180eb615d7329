"""Reading a partitioned log and its score table chunk by chunk, scores aligned.

The reading half of :mod:`tuner.evaluation.streamed`, kept apart from the search
settings so that :class:`~tuner.evaluation.search_data.Workspace` can hold a small
dataset whole (:func:`read_whole`) without importing the streamed workspace.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from simulator.datasets import DatasetError, DatasetIndex, ParquetDataset
from simulator.logs import LoggedTraffic, read_log_metadata
from tuner.evaluation.scores import ScoreTable, ScoreTableError

__all__ = ["aligned_scores", "dataset_meta", "dataset_tasks", "log_chunks", "read_whole"]


def dataset_tasks(logs: str, scores: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(label tasks, score tasks)`` of a log and a score dataset, from their schemas."""
    log_names = ParquetDataset(logs).schema().names
    score_names = ParquetDataset(scores).schema().names
    return (tuple(n[len("label_"):] for n in log_names if n.startswith("label_")),
            tuple(n[len("p_"):] for n in score_names if n.startswith("p_")))


def dataset_meta(logs: ParquetDataset
                 ) -> tuple[np.ndarray | None, dict[str, str], int | None]:
    """``(examination or None, label kinds, slots or None)`` of a log dataset.

    They come from the Parquet metadata of its files (:func:`~simulator.logs.read_log_metadata`),
    which must agree. The page size ``slots`` is the number of ``pscore_<k>`` columns,
    else the metadata's ``fusiontune.slots``, else the examination curve's length; None
    when nothing gives it (a log with only ``pscore`` and no metadata: a search must
    then give the examination curve, whose length is the page size).

    Raises:
        DatasetError: a file whose metadata differs from the first file's, or a page size
            that disagrees with the ``pscore_<k>`` columns or the examination curve.
        LogValidationError: a metadata value of the wrong type, naming the file.
    """
    keys = ("examination curve (fusiontune.examination)",
            "label kinds (fusiontune.label_kinds)", "page size (fusiontune.slots)")
    first: tuple[Path, tuple[Any, ...]] | None = None
    for path, meta in logs.file_metadata():
        got = read_log_metadata(meta, path)
        if first is None:
            first = (path, got)
            continue
        for key, want, have in zip(keys, first[1], got, strict=True):
            if have != want:
                raise DatasetError(
                    f"{path}: its Parquet metadata gives the {key} {_shown(have)} but "
                    f"{first[0]} gives {_shown(want)}; every file of a dataset needs the "
                    "same (write the files with the same settings)")
    assert first is not None  # a dataset has a file
    source, (own, kinds, slots) = first
    columns = sum(1 for n in logs.schema().names if n.startswith("pscore_"))
    for what, k in (("pscore_<k> columns", columns or None),
                    ("examination curve's values", None if own is None else len(own))):
        if slots is not None and k is not None and k != slots:
            raise DatasetError(f"{source}: its Parquet metadata fusiontune.slots is {slots} "
                               f"but it has {k} {what}; they must agree (one per slot)")
    k = columns or slots or (None if own is None else len(own))
    return (None if own is None else np.asarray(own, np.float64)), dict(kinds or {}), k


def _shown(value: Any) -> str:
    return "none" if value is None else json.dumps(value)


def log_chunks(logs: str, scores: str, score_index: DatasetIndex,
               examination: np.ndarray | None, label_kinds: Mapping[str, str],
               chunk_rows: int, files: list[int] | None = None,
               select: Callable[[np.ndarray], np.ndarray] | None = None
               ) -> Iterator[tuple[LoggedTraffic, str, ScoreTable]]:
    """Each chunk of whole requests of the log (validated), its source and its scores.

    ``select`` maps a chunk's ``request_id`` column to a row mask: only those rows (whole
    requests) are built and checked, e.g. one split's; a chunk with none is skipped.
    """
    log_ds, score_ds = ParquetDataset(logs), ParquetDataset(scores)
    for columns, source in log_ds.chunks(chunk_rows, files=files):
        if select is not None:
            keep = select(np.asarray(columns["request_id"]))
            if not keep.any():
                continue
            columns = {n: v[keep] for n, v in columns.items()}
            source = f"{source}, some requests"
        traffic = LoggedTraffic.from_columns(columns, examination, source, label_kinds)
        yield traffic, source, _scores_of(score_ds, score_index, traffic, source)


def _scores_of(scores: ParquetDataset, index: DatasetIndex, traffic: LoggedTraffic,
               source: str) -> ScoreTable:
    """The score rows of a chunk's requests, from the score files that may hold them."""
    import pyarrow as pa
    import pyarrow.dataset as pads

    low, high = int(traffic.request_ids[0]), int(traffic.request_ids[-1])
    where = (pads.field("request_id") >= low) & (pads.field("request_id") <= high)
    names = [n for n in scores.schema().names if n in ("request_id", "item_id")
             or n.startswith("p_")]
    tables = [pads.dataset(str(scores.files[i]), format="parquet").to_table(
        columns=names, filter=where) for i in index.overlapping(low, high)]
    if not tables or not sum(t.num_rows for t in tables):
        raise ScoreTableError(f"score table {scores.path} vs log {source}: no score rows for "
                              f"requests {low}..{high}; score the same log the replay reads")
    table = pa.concat_tables(tables)
    cols = {n: table.column(n).to_numpy() for n in table.column_names}
    keep = np.isin(cols["request_id"], traffic.request_ids)
    cols = {n: v[keep] for n, v in cols.items()}
    return ScoreTable.from_columns(
        cols, f"score table {scores.path} (requests {low}..{high}) vs log {source}", traffic)


def aligned_scores(table: ScoreTable, traffic: LoggedTraffic, source: str, scores: str
                   ) -> np.ndarray:
    """``[c, N, S]`` a chunk's scores in the log's order, or a message naming both."""
    try:
        return table.aligned(traffic)
    except ScoreTableError as err:
        raise ScoreTableError(f"score table {scores} vs log {source}: {err}") from None


def read_whole(logs: str, scores: str, chunk_rows: int = 200_000
               ) -> tuple[LoggedTraffic, ScoreTable]:
    """A dataset's log and score table held whole in memory (``search export`` and
    ``compare`` of a streamed study, whose picks need per-request terms), checked as a
    stream is.

    Raises:
        DatasetError, LogValidationError, ScoreTableError: as
            :meth:`~tuner.evaluation.streamed.StreamedWorkspace.check`.
    """
    log_ds = ParquetDataset(logs)
    log_ds.scan()
    examination, kinds, slots = dataset_meta(log_ds)
    parts, tables = [], []
    for traffic, source, table in log_chunks(logs, scores, ParquetDataset(scores).scan(),
                                             examination, kinds, chunk_rows):
        aligned = aligned_scores(table, traffic, source, scores)
        parts.append(traffic)
        tables.append(ScoreTable(traffic.request_ids, traffic.item_ids,
                                 {t: aligned[..., i] for i, t in enumerate(table.tasks)}))
    whole = LoggedTraffic.concatenate(parts)
    if slots is not None and whole.pscores is None and whole.slots != slots:
        whole = dataclasses.replace(whole, slots=slots)  # not each chunk's largest position
    return whole, ScoreTable(
        np.concatenate([t.request_ids for t in tables]),
        np.concatenate([t.item_ids for t in tables]),
        {k: np.concatenate([t.scores[k] for t in tables]) for k in tables[0].tasks})
