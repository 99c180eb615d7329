"""The score table: per-task model scores of every logged candidate.

On disk a long Parquet table ``request_id, item_id, p_<task>...``, any number of
rows a request (ragged requests); in memory padded ``[R, N]`` arrays (item ``-1``
and score 0 on padding) aligned with a :class:`~simulator.logs.LoggedTraffic`.
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
    """Per-task scores of ``R`` requests of up to ``N`` candidates.

    Args:
        request_ids: ``[R]``.
        item_ids: ``[R, N]``; ``-1`` on the padding of a request with fewer rows.
        scores: task -> ``[R, N]`` float64 probabilities in ``(0, 1]`` (0 on padding).

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
        rows = self._rows_of(traffic)
        items = self.item_ids[rows]  # [R, N'] in the score table's order, -1 on padding
        width, n_t = traffic.n_candidates, items.shape[1]
        if traffic.valid is None and (items >= 0).all() and n_t != width:
            raise ScoreTableError(
                f"the score table has {items.shape[1]} candidates per request, the log "
                f"{traffic.n_candidates}: score the same log the replay reads")
        logged = traffic.item_ids if traffic.valid is None else np.where(
            traffic.valid, traffic.item_ids, -1)
        # sorted, padding (-1) comes first: a request's items are its last ones in both
        order_t = np.argsort(items, axis=1, kind="stable")
        sorted_items = np.take_along_axis(items, order_t, axis=1)
        want = np.sort(logged, axis=1)
        common = min(width, n_t)
        bad_rows = (((items >= 0).sum(axis=1) != (logged >= 0).sum(axis=1))
                    | (sorted_items[:, n_t - common:] != want[:, width - common:]).any(axis=1))
        if bad_rows.any():
            bad = int(np.flatnonzero(bad_rows)[0])
            have = set(items[bad].tolist()) - {-1}
            listed = set(want[bad].tolist()) - {-1}
            raise ScoreTableError(
                f"request {int(traffic.request_ids[bad])}: the log's item(s) "
                f"{_few(sorted(listed - have))} have no score; the score table scores item(s) "
                f"{_few(sorted(have - listed))} that the log does not list there"
            )
        # position in the score table of each logged candidate (right-aligned sort ranks)
        where = np.argsort(np.argsort(logged, axis=1, kind="stable"), axis=1)
        col = np.take_along_axis(order_t, np.clip(where - width + n_t, 0, n_t - 1), axis=1)
        out = np.stack(
            [np.take_along_axis(self.scores[t][rows], col, axis=1) for t in tasks], axis=-1
        )
        if traffic.valid is not None:
            out = np.where(traffic.valid[..., None], out, 0.0)
        return out

    def _rows_of(self, traffic: LoggedTraffic) -> np.ndarray:
        """``[R]`` the score table's row of each logged request."""
        rows = _positions(self.request_ids, traffic.request_ids)
        missing = traffic.request_ids[rows < 0].tolist()
        if missing:
            n = traffic.n_requests
            hint = ("no request matches: the score table seems to be for another log"
                    if len(missing) == n else "score the same log the replay reads")
            raise ScoreTableError(
                f"{len(missing)} of {n} logged request(s) have no scores, e.g. request(s) "
                f"{_few(missing)}; {hint}"
            )
        return rows

    def check_covers(self, traffic: LoggedTraffic) -> None:
        """Raise :class:`ScoreTableError` unless every logged candidate has a score."""
        self.aligned(traffic, self.tasks[:1])

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write as Parquet, atomically."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        have = self.item_ids >= 0  # padding has no row
        cols = {"request_id": np.repeat(self.request_ids, have.sum(axis=1)),
                "item_id": self.item_ids[have]}
        cols.update({f"{_PREFIX}{t}": v[have] for t, v in self.scores.items()})
        path = Path(path)
        atomic_write(path, lambda tmp: pq.write_table(pa.table(cols), tmp))
        return path

    @classmethod
    def read(cls, path: str | os.PathLike[str], log: LoggedTraffic | None = None) -> ScoreTable:
        """Read and validate a Parquet score table.

        Args:
            path: the file.
            log: the log it scores, if known: a request missing a row then names
                the unscored item.

        Raises:
            FileNotFoundError: no such file.
            ScoreTableError: missing columns, a repeated or missing row (naming the
                request and item), or scores outside (0, 1].
        """
        import pyarrow.parquet as pq

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"score table not found: {path}")
        table = pq.read_table(path)
        columns = {n: table.column(n).to_numpy() for n in table.column_names}
        return cls.from_columns(columns, str(path), log)

    @classmethod
    def from_columns(cls, columns: Mapping[str, np.ndarray], source: str = "scores",
                     log: LoggedTraffic | None = None) -> ScoreTable:
        """Validate long-format columns ``request_id, item_id, p_<task>...`` (e.g. one
        chunk of a partitioned score table) and build the table.

        Raises:
            ScoreTableError: as :meth:`read`, naming ``source``.
        """
        path = source
        names = list(columns)
        tasks = [c[len(_PREFIX):] for c in names if c.startswith(_PREFIX)]
        missing = [c for c in ("request_id", "item_id") if c not in names]
        if missing or not tasks:
            raise ScoreTableError(f"{path}: a score table needs columns request_id, item_id "
                                  f"and p_<task>; missing {missing or ['p_<task>']}")
        req = np.asarray(columns["request_id"])
        item = np.asarray(columns["item_id"])
        if not len(req):
            raise ScoreTableError(f"{path}: the score table has no rows")
        order = np.lexsort((item, req))  # by request, then item
        pairs = np.stack([req[order], item[order]], axis=1)
        repeated = (pairs[1:] == pairs[:-1]).all(axis=1)
        if repeated.any():
            i = int(np.flatnonzero(repeated)[0]) + 1
            raise ScoreTableError(f"{path}: row {int(order[i])}: request {pairs[i, 0]} lists "
                                  f"item {pairs[i, 1]} twice; each candidate needs one row")
        order = np.argsort(req, kind="stable")
        ids, starts, counts = np.unique(req[order], return_index=True, return_counts=True)
        if log is not None:  # a request with other rows than its log's names the items
            at = _positions(log.request_ids, ids)  # a request the log lacks is not judged
            logged = np.where(at >= 0, log.candidate_counts[np.maximum(at, 0)], counts)
            odd = np.flatnonzero(logged != counts)
            if len(odd):
                i = int(odd[0])
                raise ScoreTableError(
                    f"{path}: request {ids[i]} has {counts[i]} scored candidate(s) but the log "
                    f"lists {int(logged[i])}"
                    f"{_missing_items(ids[i], item[req == ids[i]], log)}; every logged "
                    "candidate needs one row")
        n = int(counts.max())
        col = np.arange(n)[None, :]
        have = col < counts[:, None]
        at = np.where(have, order[np.minimum(starts[:, None] + col, len(order) - 1)], 0)
        scores = {}
        for t in tasks:
            v = np.asarray(columns[f"{_PREFIX}{t}"]).astype(np.float64)
            bad = ~((v > 0) & (v <= 1))
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise ScoreTableError(f"{path}: column 'p_{t}' row {row}: score {v[row]} is "
                                      "not a probability in (0, 1]")
            scores[t] = np.where(have, v[at], 0.0)
        items = np.where(have, item[at], -1)
        return cls(request_ids=ids, item_ids=items, scores=scores)


def _positions(keys: np.ndarray, query: np.ndarray) -> np.ndarray:
    """``[len(query)]`` the index in ``keys`` (unique) of each query value, -1 where absent.

    Example:
        >>> _positions(np.array([30, 10, 20]), np.array([20, 40, 30])).tolist()
        [2, -1, 0]
    """
    query = np.asarray(query)
    if not len(keys):
        return np.full(len(query), -1, dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    at = np.minimum(np.searchsorted(keys[order], query), len(keys) - 1)
    return np.where(keys[order][at] == query, order[at], -1).astype(np.int64)


def _few(ids: list[int], k: int = 5) -> str:
    """At most ``k`` ids, then how many more."""
    more = f" and {len(ids) - k} more" if len(ids) > k else ""
    return ", ".join(str(i) for i in ids[:k]) + more


def _missing_items(request: int, scored: np.ndarray, log: LoggedTraffic | None) -> str:
    """``" (item 5 has no row)"`` from the log's candidates of ``request``, if known."""
    if log is None:
        return ""
    at = np.flatnonzero(log.request_ids == request)
    if not len(at):
        return " (the log has no such request)"
    missing = sorted(set(log.item_ids[at[0]].tolist()) - set(scored.tolist()))
    return f" (item(s) {_few(missing)} of the log have no row)" if missing else ""
