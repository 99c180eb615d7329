"""Reading a partitioned log and its score table chunk by chunk, scores aligned.

The reading half of :mod:`tuner.evaluation.streamed`, kept apart from the search
settings so that :class:`~tuner.evaluation.search_data.Workspace` can hold a small
dataset whole (:func:`read_whole`) without importing the streamed workspace.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import numpy as np

from simulator.datasets import DatasetIndex, ParquetDataset
from simulator.logs import LoggedTraffic, read_log_metadata
from tuner.evaluation.scores import ScoreTable, ScoreTableError

__all__ = ["aligned_scores", "dataset_meta", "dataset_tasks", "log_chunks", "read_whole"]


def dataset_tasks(logs: str, scores: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(label tasks, score tasks)`` of a log and a score dataset, from their schemas."""
    log_names = ParquetDataset(logs).schema().names
    score_names = ParquetDataset(scores).schema().names
    return (tuple(n[len("label_"):] for n in log_names if n.startswith("label_")),
            tuple(n[len("p_"):] for n in score_names if n.startswith("p_")))


def dataset_meta(logs: ParquetDataset) -> tuple[np.ndarray | None, dict[str, str], int]:
    """``(examination or None, label kinds, slots)`` from a log dataset's first file."""
    own, kinds, _ = read_log_metadata(logs.metadata(), logs.path)
    k = sum(1 for n in logs.schema().names if n.startswith("pscore_"))
    return (None if own is None else np.asarray(own, np.float64)), dict(kinds or {}), k


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
    examination, kinds, _ = dataset_meta(log_ds)
    parts, tables = [], []
    for traffic, source, table in log_chunks(logs, scores, ParquetDataset(scores).scan(),
                                             examination, kinds, chunk_rows):
        aligned = aligned_scores(table, traffic, source, scores)
        parts.append(traffic)
        tables.append(ScoreTable(traffic.request_ids, traffic.item_ids,
                                 {t: aligned[..., i] for i, t in enumerate(table.tasks)}))
    return LoggedTraffic.concatenate(parts), ScoreTable(
        np.concatenate([t.request_ids for t in tables]),
        np.concatenate([t.item_ids for t in tables]),
        {k: np.concatenate([t.scores[k] for t in tables]) for k in tables[0].tasks})
