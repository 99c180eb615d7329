"""Reading a partitioned log and its score table chunk by chunk, scores aligned.

The reading half of :mod:`tuner.evaluation.streamed`, kept apart from the search
settings so that :class:`~tuner.evaluation.search_data.Workspace` can hold a small
dataset whole (:func:`read_whole`) without importing the streamed workspace.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simulator.datasets import DatasetError, DatasetIndex, ParquetDataset
from simulator.logs import FEATURE_PREFIX, LoggedTraffic, read_log_metadata
from tuner.evaluation.chunk_scores import ScoreCursors
from tuner.evaluation.scores import ScoreTable

__all__ = ["LogChunk", "dataset_fingerprint", "dataset_meta", "dataset_tasks", "log_chunks",
           "read_whole"]

_PASSED: set[tuple[Hashable, str, tuple[int, int]]] = set()
"""``(pass key, log file, its (size, mtime_ns))`` of the log files that a pass of
:func:`log_chunks` read to their end without a fault, in this process: a later pass with
the same key over the unchanged file (and unchanged score files) skips the value checks."""


def dataset_tasks(logs: str, scores: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(label tasks, score tasks)`` of a log and a score dataset, from their schemas."""
    log_names = ParquetDataset(logs).schema().names
    score_names = ParquetDataset(scores).schema().names
    return (tuple(n[len("label_"):] for n in log_names if n.startswith("label_")),
            tuple(n[len("p_"):] for n in score_names if n.startswith("p_")))


def dataset_fingerprint(dataset: ParquetDataset) -> str:
    """``"files:"`` and the sha256 (first 16 hex digits) of every file's path under the
    dataset's folder, size and Parquet footer (its schema, row groups, offsets and column
    statistics), read without decoding any rows.

    A streamed log is never hashed whole (that would be one more pass over it); the footers
    change with what the files hold, so an export can tell the log it was tuned on from
    another. It is not :meth:`LoggedTraffic.fingerprint`'s hash of the rows: the same rows
    written into other files give another fingerprint.
    """
    h = hashlib.sha256()
    root = Path(dataset.path)
    for f in dataset.files:
        size = f.stat().st_size
        with f.open("rb") as fh:
            fh.seek(max(size - 8, 0))
            tail = fh.read(8)
            footer = int.from_bytes(tail[:4], "little") if tail[4:] == b"PAR1" else 0
            fh.seek(max(size - 8 - footer, 0))
            meta = fh.read(footer)
        name = f.name if f == root else str(f.relative_to(root))
        h.update(f"{name}\0{size}\0".encode())
        h.update(meta)
    return "files:" + h.hexdigest()[:16]


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


@dataclass(frozen=True)
class LogChunk:
    """Whole requests of a streamed log, validated, with their scores aligned.

    Args:
        traffic: the chunk's requests.
        source: what they are (file, first row; "some requests" when a split chose
            them), for messages.
        scores: ``[c, N, S]`` float64 per-task scores in the log's request and candidate
            order, 0 on padding.
        score_tasks: names of the ``S`` score columns.
    """

    traffic: LoggedTraffic
    source: str
    scores: np.ndarray
    score_tasks: tuple[str, ...]

    def table(self) -> ScoreTable:
        """The chunk's scores as a score table (the log's layout)."""
        t = self.traffic
        items = t.item_ids if t.valid is None else np.where(t.valid, t.item_ids, -1)
        return ScoreTable(t.request_ids, items,
                          {k: self.scores[..., i] for i, k in enumerate(self.score_tasks)})


def log_chunks(logs: str, scores: str, score_index: DatasetIndex,
               examination: np.ndarray | None, label_kinds: Mapping[str, str],
               chunk_rows: int, files: list[int] | None = None,
               select: Callable[[np.ndarray], np.ndarray] | None = None,
               features: bool = True, memo: Hashable | None = None) -> Iterator[LogChunk]:
    """Each chunk of whole requests of the log (validated) with its scores.

    ``select`` maps request ids to a mask (elementwise: it is asked once a request): only
    those requests are built and checked, e.g. one split's; a chunk with none is skipped. The
    score files are read forward, once a pass (:class:`~tuner.evaluation.chunk_scores.
    ScoreCursors`); every logged candidate of a chunk, chosen or not, must have a score.
    Without ``features`` the ``feature_<name>`` columns are not read (a replay needs none).
    Both datasets are read in record batches of ``chunk_rows`` rows.

    ``memo`` names what ``select`` chooses (e.g. the split), for passes repeated over the
    same files (a search's generations): once a pass with that ``memo`` has read a log file
    to its end without a fault, later ones skip the value checks of its rows (the log's
    :func:`~simulator._log_checks.check_traffic`, the scores' range) while the file and the
    score files are unchanged (size, mtime) and the curve and label kinds are the same.
    The chunks are built exactly as before; the layout and the alignment of the scores are
    checked on every pass.

    Raises:
        LogValidationError: the log's own checks, naming the file and row.
        ScoreTableError: a logged candidate without a score (or scored twice, or a score
            outside (0, 1]), naming the score file and row and the log's.
    """
    log_ds = ParquetDataset(logs, batch_rows=chunk_rows)
    cursors = ScoreCursors(ParquetDataset(scores, batch_rows=chunk_rows), score_index)
    names = None if features else [n for n in log_ds.schema().names
                                   if not n.startswith(FEATURE_PREFIX)]
    key = None if memo is None else (
        memo, features, None if examination is None else tuple(np.asarray(examination).tolist()),
        tuple(sorted(label_kinds.items())), tuple(_stamp(f) for f in cursors.scores.files))
    current: tuple[Hashable, str, tuple[int, int]] | None = None
    checked = False
    for columns, file, start in log_ds.located_chunks(chunk_rows, names, files):
        if key is not None and (current is None or current[1] != str(file)):
            if current is not None:  # the previous file was read to its end
                _PASSED.add(current)
            current = (key, str(file), _stamp(file))
            checked = current in _PASSED
        source = f"{file} (from row {start})"
        ids = np.asarray(columns["request_id"])
        chosen, keep = columns, None
        if select is not None:  # asked once a request (rows sorted), an index of rows
            starts = np.flatnonzero(np.concatenate([[True], ids[1:] != ids[:-1]]))
            chosen_requests = select(ids[starts])
            keep = np.flatnonzero(np.repeat(chosen_requests,
                                            np.diff(np.append(starts, len(ids)))))
            if not len(keep):
                continue
            chosen = {n: v.take(keep) for n, v in columns.items()}
            source = f"{source}, some requests"
        # the log's own checks first (a missing item_id column is named there)
        traffic = LoggedTraffic.from_columns(chosen, examination, source, label_kinds,
                                             checked=checked)
        flat = cursors.align(ids, np.asarray(columns["item_id"]), file, start,
                             checked=checked)  # [rows, S]
        if keep is not None:
            flat = flat.take(keep, axis=0)
        yield LogChunk(traffic, source, _dense(traffic, flat), cursors.tasks)
    if current is not None:
        _PASSED.add(current)


def _stamp(path: Path) -> tuple[int, int]:
    """``(size, mtime_ns)`` of a file: what tells a later pass that it is unchanged."""
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def _dense(traffic: LoggedTraffic, flat: np.ndarray) -> np.ndarray:
    """``[c, N, S]`` the rows' scores ``[rows, S]`` in the chunk's padded layout.

    The chunk's rows are sorted by request (the layout rule), so its candidates fill the
    padded arrays in row order.
    """
    if traffic.valid is None:
        return flat.reshape(traffic.n_requests, traffic.n_candidates, flat.shape[1])
    out = np.zeros((*traffic.valid.shape, flat.shape[1]))
    out[traffic.valid] = flat
    return out


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
    for chunk in log_chunks(logs, scores, ParquetDataset(scores).scan(), examination, kinds,
                            chunk_rows):
        parts.append(chunk.traffic)
        tables.append(chunk.table())
    whole = LoggedTraffic.concatenate(parts)
    if slots is not None and whole.pscores is None and whole.slots != slots:
        whole = dataclasses.replace(whole, slots=slots)  # not each chunk's largest position
    width = whole.n_candidates  # ragged chunks are each as wide as their widest request

    def cat(arrays: list[np.ndarray], fill: float) -> np.ndarray:
        return np.concatenate([np.pad(a, [(0, 0), (0, width - a.shape[1])],
                                      constant_values=fill) for a in arrays])

    return whole, ScoreTable(
        np.concatenate([t.request_ids for t in tables]), cat([t.item_ids for t in tables], -1),
        {k: cat([t.scores[k] for t in tables], 0.0) for k in tables[0].tasks})
