"""The score table: per-task model scores of every logged candidate.

On disk a long Parquet table ``request_id, item_id, p_<task>...``; in memory
dense ``[R, N]`` arrays aligned with a :class:`~simulator.logs.LoggedTraffic`.
It is where the ranker (which writes it) and the simulator (which reads it)
meet, as plain arrays keyed by task name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simulator.files import atomic_write
from simulator.logs import LoggedTraffic

__all__ = ["ScoreTable", "ScoreTableError"]

_PREFIX = "p_"


class ScoreTableError(ValueError):
    """A score table is malformed or does not match its log."""


@dataclass(frozen=True)
class ScoreTable:
    """Per-task scores of ``R`` requests x ``N`` candidates.

    Args:
        request_ids: ``[R]``.
        item_ids: ``[R, N]``.
        scores: task -> ``[R, N]`` float64 probabilities in ``(0, 1]``.

    Example:
        >>> table = ScoreTable.read("scores.parquet")  # doctest: +SKIP
        >>> matrix = table.aligned(traffic, ("click", "like"))  # doctest: +SKIP
    """

    request_ids: np.ndarray
    item_ids: np.ndarray
    scores: Mapping[str, np.ndarray]

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.scores)

    def aligned(self, traffic: LoggedTraffic, tasks: tuple[str, ...] | None = None) -> np.ndarray:
        """``[R, N, S]`` scores in the log's request and candidate order.

        Raises:
            ScoreTableError: an unknown task, or a logged candidate without a score.
        """
        tasks = self.tasks if tasks is None else tasks
        unknown = [t for t in tasks if t not in self.scores]
        if unknown:
            raise ScoreTableError(f"score table has no task(s) {unknown}; it has "
                                  f"{list(self.tasks)}")
        row_of = {int(r): i for i, r in enumerate(self.request_ids)}
        missing = [int(r) for r in traffic.request_ids if int(r) not in row_of]
        if missing:
            raise ScoreTableError(
                f"{len(missing)} logged request(s) have no scores, e.g. request {missing[0]}; "
                "score the same log the replay reads"
            )
        rows = np.array([row_of[int(r)] for r in traffic.request_ids])
        items = self.item_ids[rows]  # [R, N] in the score table's candidate order
        order_t = np.argsort(items, axis=1, kind="stable")
        sorted_items = np.take_along_axis(items, order_t, axis=1)
        where = np.argsort(np.argsort(traffic.item_ids, axis=1, kind="stable"), axis=1)
        want = np.sort(traffic.item_ids, axis=1)
        if not np.array_equal(sorted_items, want):
            bad = int(np.flatnonzero((sorted_items != want).any(axis=1))[0])
            raise ScoreTableError(
                f"request {int(traffic.request_ids[bad])}: the score table's candidates "
                f"{sorted(items[bad].tolist())} differ from the log's "
                f"{sorted(traffic.item_ids[bad].tolist())}"
            )
        # position in the score table of each logged candidate
        col = np.take_along_axis(order_t, where, axis=1)
        return np.stack(
            [np.take_along_axis(self.scores[t][rows], col, axis=1) for t in tasks], axis=-1
        )

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write as Parquet, atomically."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        n = self.item_ids.shape[1]
        cols = {"request_id": np.repeat(self.request_ids, n), "item_id": self.item_ids.ravel()}
        cols.update({f"{_PREFIX}{t}": v.ravel() for t, v in self.scores.items()})
        path = Path(path)
        atomic_write(path, lambda tmp: pq.write_table(pa.table(cols), tmp))
        return path

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> ScoreTable:
        """Read and validate a Parquet score table.

        Raises:
            FileNotFoundError: no such file.
            ScoreTableError: missing columns, ragged requests or scores outside (0, 1].
        """
        import pyarrow.parquet as pq

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"score table not found: {path}")
        table = pq.read_table(path)
        names = table.column_names
        tasks = [c[len(_PREFIX):] for c in names if c.startswith(_PREFIX)]
        missing = [c for c in ("request_id", "item_id") if c not in names]
        if missing or not tasks:
            raise ScoreTableError(f"{path}: a score table needs columns request_id, item_id "
                                  f"and p_<task>; missing {missing or ['p_<task>']}")
        req = table.column("request_id").to_numpy()
        order = np.argsort(req, kind="stable")
        ids, counts = np.unique(req, return_counts=True)
        if (counts != counts[0]).any():
            raise ScoreTableError(f"{path}: requests have different numbers of candidates")
        r, n = len(ids), int(counts[0])
        scores = {}
        for t in tasks:
            v = table.column(f"{_PREFIX}{t}").to_numpy().astype(np.float64)
            bad = ~((v > 0) & (v <= 1))
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise ScoreTableError(f"{path}: column 'p_{t}' row {row}: score {v[row]} is "
                                      "not a probability in (0, 1]")
            scores[t] = v[order].reshape(r, n)
        items = table.column("item_id").to_numpy()[order].reshape(r, n)
        return cls(request_ids=ids, item_ids=items, scores=scores)
