"""The scores of a streamed log's chunks, read forward through the score files.

A score dataset is sorted by ``request_id`` inside each file (what
:meth:`~simulator.datasets.ParquetDataset.scan` checks), and so is each chunk of the
log. :class:`ScoreCursors` keeps one :class:`~simulator.datasets.RequestCursor` per score
file, so a pass over the log reads every score file once, in record batches, however
many log chunks it is cut into (before, each chunk re-read and filtered every score file
that might hold its requests).

:meth:`ScoreCursors.align` gives a chunk's scores in the log's row order. When the score
rows are the log's rows, request by request and candidate by candidate (a table written
by ``ranker score`` or ``world generate``), that is one comparison of the id columns.
Otherwise (candidates in another order, scores cut into files another way, extra
requests the log lacks) the rows are matched on ``(request_id, item_id)``; a logged
candidate without a score, a scored candidate the log does not list there, or one
scored twice is refused naming the score file and row and the log file and row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from simulator.datasets import REQUEST, DatasetIndex, ParquetDataset, RequestCursor
from tuner.evaluation.scores import ScoreTableError

__all__ = ["ScoreCursors"]

ITEM = "item_id"
PREFIX = "p_"


class ScoreCursors:
    """Forward readers of a score dataset's files, one per file, opened when first needed.

    Args:
        scores: the score dataset.
        index: its index (which file holds which requests).

    Example:
        >>> cursors = ScoreCursors(ParquetDataset("scores/"), index)  # doctest: +SKIP
        >>> flat = cursors.align(log_ids, log_items, Path("logs/a.parquet"), 0)  # doctest: +SKIP
    """

    def __init__(self, scores: ParquetDataset, index: DatasetIndex) -> None:
        self.scores, self.index = scores, index
        names = scores.schema().names
        self.tasks = tuple(n[len(PREFIX):] for n in names if n.startswith(PREFIX))
        missing = [c for c in (REQUEST, ITEM) if c not in names]
        if missing or not self.tasks:
            raise ScoreTableError(f"{scores.files[0]}: a score table needs columns request_id, "
                                  f"item_id and p_<task>; missing {missing or ['p_<task>']}")
        self._columns = [REQUEST, ITEM, *(PREFIX + t for t in self.tasks)]
        self._cursors: dict[int, RequestCursor] = {}
        self._closed: set[int] = set()  # files passed and let go
        self._restarts = 0

    @property
    def restarts(self) -> int:
        """How many times a score file was read again from its start (0 on a log read in
        increasing request order)."""
        return self._restarts + sum(c.restarts for c in self._cursors.values())

    def _cursor(self, i: int, low: int) -> RequestCursor:
        """File ``i``'s cursor; cursors of files that end before ``low`` are let go, so
        memory holds at most a record batch of the files still ahead."""
        for j in [j for j in self._cursors if self.index.last_id[j] < low]:
            self._restarts += self._cursors.pop(j).restarts
            self._closed.add(j)
        if i not in self._cursors:
            if i in self._closed:  # the log went back to requests of a file let go
                self._restarts += 1
            self._cursors[i] = self.scores.cursor(i, self._columns)
        return self._cursors[i]

    def _rows(self, low: int, high: int) -> tuple[dict[str, np.ndarray], np.ndarray,
                                                  np.ndarray]:
        """The score rows of requests ``low..high``: columns, and each row's file (index)
        and row in it."""
        parts, files, rows = [], [], []
        for i in self.index.overlapping(low, high):
            cols, first = self._cursor(i, low).take(low, high)
            n = len(cols.get(REQUEST, ()))
            if n:
                parts.append(cols)
                files.append(np.full(n, i, dtype=np.int64))
                rows.append(first + np.arange(n, dtype=np.int64))
        if not parts:
            return {}, np.zeros(0, np.int64), np.zeros(0, np.int64)
        if len(parts) == 1:
            return parts[0], files[0], rows[0]
        return ({n: np.concatenate([p[n] for p in parts]) for n in self._columns},
                np.concatenate(files), np.concatenate(rows))

    def align(self, request_ids: np.ndarray, item_ids: np.ndarray, log_file: Path,
              log_row: int, checked: bool = False) -> np.ndarray:
        """``[rows, S]`` float64 the scores of a log chunk's rows, in their order.

        Args:
            request_ids: ``[rows]`` the chunk's ``request_id`` column (sorted).
            item_ids: ``[rows]`` its ``item_id`` column.
            log_file: the log file the chunk comes from, for messages.
            log_row: the file row of the chunk's first row.
            checked: these score rows already passed the probability check (an earlier
                pass over unchanged files): it is not run again. The rows are matched
                to the log's as always.

        Raises:
            ScoreTableError: a logged candidate without a score, a scored candidate the
                log does not list for its request, one scored twice, or a score outside
                (0, 1], naming the score file and row (and the log's).
        """
        low, high = int(request_ids[0]), int(request_ids[-1])
        cols, files, rows = self._rows(low, high)
        if not len(files):
            raise ScoreTableError(
                f"score table {self.scores.path} vs log {log_file} (from row {log_row}): no "
                f"score rows for requests {low}..{high}; score the same log the replay reads")
        sc_req, sc_item = cols[REQUEST], cols[ITEM]
        if not (len(sc_req) == len(request_ids) and np.array_equal(sc_req, request_ids)
                and np.array_equal(sc_item, item_ids)):
            at = self._match(request_ids, item_ids, sc_req, sc_item, files, rows, log_file,
                             log_row)
            cols = {n: v[at] for n, v in cols.items()}
            files, rows = files[at], rows[at]
        out = np.empty((len(request_ids), len(self.tasks)), dtype=np.float64)
        for j, t in enumerate(self.tasks):
            v = cols[PREFIX + t]
            bad = None if checked else ~((v > 0) & (v <= 1))
            if bad is not None and bad.any():
                k = int(np.flatnonzero(bad)[0])
                raise ScoreTableError(
                    f"score table {self.scores.files[files[k]]}: column 'p_{t}' row "
                    f"{int(rows[k])}: score {v[k]} is not a probability in (0, 1]")
            out[:, j] = v
        return out

    def _match(self, request_ids: np.ndarray, item_ids: np.ndarray, sc_req: np.ndarray,
               sc_item: np.ndarray, files: np.ndarray, rows: np.ndarray, log_file: Path,
               log_row: int) -> np.ndarray:
        """``[rows]`` the score row of each log row, matched on (request, item)."""
        keep = np.flatnonzero(np.isin(sc_req, request_ids))  # requests the log lacks: ignored
        by_log = np.lexsort((item_ids, request_ids))
        by_score = keep[np.lexsort((sc_item[keep], sc_req[keep]))]
        same = len(by_log) == len(by_score) and np.array_equal(
            request_ids[by_log], sc_req[by_score]) and np.array_equal(
            item_ids[by_log], sc_item[by_score])
        if not same:
            self._refuse(request_ids, item_ids, sc_req[keep], sc_item[keep], files[keep],
                         rows[keep], by_log, log_file, log_row)
        at = np.empty(len(request_ids), dtype=np.int64)
        at[by_log] = by_score
        return at

    def _refuse(self, request_ids: np.ndarray, item_ids: np.ndarray, sc_req: np.ndarray,
                sc_item: np.ndarray, files: np.ndarray, rows: np.ndarray, by_log: np.ndarray,
                log_file: Path, log_row: int) -> None:
        """Raise naming the first request whose scored candidates are not its logged ones."""
        order = np.lexsort((sc_item, sc_req))
        pairs_log = np.stack([request_ids[by_log], item_ids[by_log]], axis=1)
        pairs_sc = np.stack([sc_req[order], sc_item[order]], axis=1)
        n = min(len(pairs_log), len(pairs_sc))
        differ = np.flatnonzero((pairs_log[:n] != pairs_sc[:n]).any(axis=1))
        j = int(differ[0]) if len(differ) else n
        request = min(int(p[j, 0]) for p in (pairs_log, pairs_sc) if j < len(p))
        logged = item_ids[request_ids == request]
        mine = sc_req == request
        scored = sc_item[mine]
        log_at = f"log {log_file} row {log_row + int(np.flatnonzero(request_ids == request)[0])}"
        if not mine.any():
            raise ScoreTableError(
                f"score table {self.scores.path}: no rows for request {request} ({log_at}); "
                "every logged candidate needs one score row (score the same log the replay "
                "reads)")
        first = int(np.flatnonzero(mine)[0])
        where = f"score table {self.scores.files[files[first]]}: row {int(rows[first])}"
        values, counts = np.unique(scored, return_counts=True)
        twice = values[counts > 1].tolist()
        missing = sorted(set(logged.tolist()) - set(scored.tolist()))
        extra = sorted(set(scored.tolist()) - set(logged.tolist()))
        what = "; ".join(x for x in [
            f"the log's item(s) {_few(missing)} have no score" if missing else "",
            f"it scores item(s) {_few(extra)} that the log does not list there" if extra else "",
            f"it scores item(s) {_few(twice)} more than once" if twice else "",
        ] if x)
        raise ScoreTableError(f"{where}: request {request} ({log_at}): {what}; every logged "
                              "candidate needs exactly one score row")


def _few(ids: list[int], k: int = 5) -> str:
    """At most ``k`` ids, then how many more."""
    more = f" and {len(ids) - k} more" if len(ids) > k else ""
    return ", ".join(str(i) for i in ids[:k]) + more
