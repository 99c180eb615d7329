"""A search over a log too large for memory: a partitioned Parquet dataset, streamed.

:class:`StreamedWorkspace` is the streamed twin of
:class:`~tuner.evaluation.search_data.Workspace`: the log and the score table are
folders of Parquet files (or single files), read chunk by chunk of whole requests. Its
``check()`` reads everything once (the layout rules of
:mod:`simulator.datasets`, the log's own checks, and that every logged candidate has a
score) before any trial is written; its ``replay(part)`` is a
:class:`~simulator.streaming.StreamedReplay` whose chunks are those requests of each
log chunk that the hash split puts in ``part``, with their scores.

:class:`PartChunks` is the reader of one split on some of the log's files: picklable, so
a Dask task gets one and reads its own files (:mod:`tuner.evaluation.dask_engine`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simulator.datasets import DatasetIndex, ParquetDataset
from simulator.estimators import SlateFeedback
from simulator.fusion import make_fusion
from simulator.logs import LoggedTraffic
from simulator.policies import TopKPolicy
from simulator.streaming import ReplayChunk, StreamedReplay, check_streamable
from tuner.evaluation.dataset_io import LogChunk, dataset_meta, dataset_tasks, log_chunks
from tuner.evaluation.scores import ScoreTable
from tuner.evaluation.search_data import (
    SearchSettings,
    Workspace,
    examination_of,
    make_interval,
    reward_model,
    split_parts,
)

__all__ = ["CHUNK_ROWS", "PartChunks", "StreamedWorkspace", "dataset_tasks", "open_workspace",
           "write_partitioned"]

CHUNK_ROWS = 200_000
"""Log rows per chunk (~10,000 requests of 20): memory ~ ``P * rows * 4`` bytes a term."""



@dataclass(frozen=True)
class PartChunks:
    """The chunks of one split of a streamed log, on some of its files.

    Args:
        settings: the search's settings (log, scores, split, estimator).
        part: the split's name.
        score_index: the score dataset's index (which file holds which requests).
        examination: ``[K]`` the examination curve the search uses.
        label_kinds: the log's label kinds.
        files: indices of the log files to read (None: all).
        chunk_rows: log rows per chunk.
        keep: of each chunk's requests, the ones to replay (``traffic -> [c]`` mask, e.g.
            one segment's, see :mod:`tuner.segments`); the feature columns are then read.
            Picklable when the reader goes to Dask. None: every request of the split.
    """

    settings: SearchSettings
    part: str
    score_index: DatasetIndex
    examination: np.ndarray
    label_kinds: dict[str, str]
    files: tuple[int, ...] | None = None
    chunk_rows: int = CHUNK_ROWS
    keep: Callable[[LoggedTraffic], np.ndarray] | None = None

    def __call__(self) -> Iterator[ReplayChunk]:
        for chunk, _ in self.with_traffic(features=self.keep is not None):
            yield chunk

    def with_traffic(self, features: bool = True
                     ) -> Iterator[tuple[ReplayChunk, LoggedTraffic]]:
        """Each replay chunk with the requests it was built from (``features``: with their
        feature columns, as a weight model reads them)."""
        needs_model = self.settings.make_estimator().needs_reward_model
        for chunk in self.split_chunks(features=features or self.keep is not None):
            sub, scores = chunk.traffic, chunk.scores
            if self.keep is not None:
                rows = np.flatnonzero(self.keep(sub))
                if not rows.size:
                    continue
                sub, scores = sub.take(rows), scores[rows]
            rm = (reward_model(self.settings, chunk.score_tasks, sub.tasks, scores)
                  if needs_model else None)
            yield ReplayChunk(sub.request_ids, SlateFeedback.from_traffic(sub, reward_model=rm),
                              scores), sub

    def split_chunks(self, features: bool = False) -> Iterator[LogChunk]:
        """Each chunk of this split's requests (``features``: with the feature columns)."""
        part_no = list(self.settings.splits).index(self.part)

        def in_part(ids: np.ndarray) -> np.ndarray:  # rows of this split's requests
            return split_parts(ids, self.settings.splits, self.settings.split_seed) == part_no

        return self.log_chunks(in_part, features=features)

    def log_chunks(self, select: Callable[[np.ndarray], np.ndarray] | None = None,
                   features: bool = True) -> Iterator[LogChunk]:
        """Each chunk of the log (validated) with its scores (only the rows ``select``
        keeps; the feature columns only with ``features``, see
        :func:`~tuner.evaluation.dataset_io.log_chunks`)."""
        memo = None if select is None else (  # what the split chooses: the same every pass
            self.part, tuple(self.settings.splits.items()), self.settings.split_seed)
        return log_chunks(self.settings.logs, self.settings.scores, self.score_index,
                          self.examination, self.label_kinds, self.chunk_rows,
                          None if self.files is None else list(self.files), select, features,
                          memo)


class StreamedWorkspace:
    """The streamed log, its score table and the streamed replays of a search's splits.

    Example:
        >>> ws = StreamedWorkspace(settings)  # doctest: +SKIP
        >>> ws.check()  # doctest: +SKIP
        >>> ws.replay("search").evaluate(np.array([[1.0, 0.5, 2.0]]))  # doctest: +SKIP
    """

    def __init__(self, settings: SearchSettings, chunk_rows: int = CHUNK_ROWS) -> None:
        self.settings = settings
        self.chunk_rows = chunk_rows
        self.logs = ParquetDataset(settings.logs)
        self.scores = ParquetDataset(settings.scores)
        self.tasks, self.score_tasks = dataset_tasks(settings.logs, settings.scores)
        own, self.label_kinds, k = dataset_meta(self.logs)
        self.examination = examination_of(settings, own, k)
        unknown = [t for t in settings.objective if t not in self.tasks]
        if unknown:
            raise ValueError(f"objective names unknown task(s) {unknown}; the log's tasks: "
                             f"{list(self.tasks)}")
        if settings.ordering_score is not None:
            raise ValueError(f"ordering score {settings.estimator!r} ranks fused scores over "
                             "every impression of the search split at once, so it cannot be "
                             "streamed; read the log into memory (one Parquet file without "
                             "--stream) or choose an estimator (snips, ips, dr, ...)")
        check_streamable(settings.make_estimator())
        self._score_index: DatasetIndex | None = None
        self._log_index: DatasetIndex | None = None

    @property
    def traffic(self) -> LoggedTraffic:
        """Refused: a streamed log is never held whole (what a Pareto search needs).

        Raises:
            ValueError: always, naming what would work.
        """
        raise ValueError(f"log {self.settings.logs} is streamed (a folder, or --stream): this "
                         "command needs the whole log in memory; give it a single Parquet "
                         "file without --stream")

    @property
    def score_index(self) -> DatasetIndex:
        if self._score_index is None:
            self._score_index = self.scores.scan()
        return self._score_index

    @property
    def log_index(self) -> DatasetIndex:
        if self._log_index is None:
            self._log_index = self.logs.scan()
        return self._log_index

    def check(self) -> dict[str, int]:
        """Read the whole log and score table once and refuse what breaks a rule.

        Returns:
            Requests per split.

        Raises:
            DatasetError: a layout rule (request split across files, out of order, a
                schema that differs), naming the file and row.
            LogValidationError: the log's own checks, naming the file and row.
            ScoreTableError: a logged candidate without a score, naming the request.
            ValueError: a split without requests.
        """
        _ = self.log_index  # layout rules, before the first chunk is built
        reader = self.chunks(next(iter(self.settings.splits)))
        counts = dict.fromkeys(self.settings.splits, 0)
        names = list(self.settings.splits)
        for chunk in reader.log_chunks():  # each chunk's scores are aligned as it is read
            parts = split_parts(chunk.traffic.request_ids, self.settings.splits,
                                self.settings.split_seed)
            for i, name in enumerate(names):
                counts[name] += int((parts == i).sum())
        empty = [n for n, c in counts.items() if not c]
        if empty:
            raise ValueError(f"split(s) {empty} of {self.log_index.n_requests} requests are "
                             "empty")
        return counts

    def chunks(self, part: str, files: tuple[int, ...] | None = None,
               keep: Callable[[LoggedTraffic], np.ndarray] | None = None) -> PartChunks:
        """The reader of split ``part`` (on ``files``, indices of the log's files; only the
        requests ``keep`` marks, see :class:`PartChunks`)."""
        if part not in self.settings.splits:
            raise KeyError(f"no split {part!r}; splits: {list(self.settings.splits)}")
        return PartChunks(self.settings, part, self.score_index, self.examination,
                          self.label_kinds, files, self.chunk_rows, keep)

    def replay(self, part: str, keep: Callable[[LoggedTraffic], np.ndarray] | None = None
               ) -> StreamedReplay:
        """The streamed replay of one split (of its requests ``keep`` marks)."""
        s = self.settings
        k = len(self.examination)
        return StreamedReplay(self.chunks(part, keep=keep), self.tasks, self.score_tasks,
                              make_fusion(s.formula), TopKPolicy(k),
                              s.make_estimator(),
                              make_interval(s.interval, s.n_bootstrap, s.split_seed))

    def describe(self) -> dict[str, Any]:
        """Files and sizes, for messages."""
        return {"log_files": len(self.logs.files), "score_files": len(self.scores.files),
                "requests": self.log_index.n_requests, "rows": self.log_index.n_rows}


def write_partitioned(traffic: LoggedTraffic, table: ScoreTable, logs: str | Path,
                      scores: str | Path, partitions: int, hive: bool = False) -> None:
    """Write a log and its score table as ``partitions`` Parquet files each, the requests
    cut into consecutive groups (``hive``: in ``part=<i>/`` folders), as a stream reads them.

    Example:
        >>> write_partitioned(log, table, "logs/", "scores/", 7)  # doctest: +SKIP
    """
    bounds = np.linspace(0, traffic.n_requests, partitions + 1).astype(int)
    rows_of = {int(r): i for i, r in enumerate(table.request_ids)}
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        name = f"part={i}/data.parquet" if hive else f"part-{i:04d}.parquet"
        piece = traffic.take(np.arange(a, b))
        rows = np.array([rows_of[int(r)] for r in piece.request_ids], dtype=np.int64)
        for folder, write in ((logs, piece.write), (scores, ScoreTable(
                table.request_ids[rows], table.item_ids[rows],
                {t: v[rows] for t, v in table.scores.items()}).write)):
            path = Path(folder) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            write(path)




def open_workspace(settings: SearchSettings, traffic: LoggedTraffic | None = None,
                   table: ScoreTable | None = None) -> StreamedWorkspace | Workspace:
    """The workspace of a search: streamed (a folder of files, or ``stream``) or in memory.

    Both give ``settings``, ``tasks``, ``score_tasks``, ``check()`` and ``replay(part)``.
    """
    if settings.streamed:
        return StreamedWorkspace(settings)
    return Workspace(settings, traffic, table)
