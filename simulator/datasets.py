"""Partitioned Parquet datasets read out of core, in chunks of whole requests.

A dataset is one Parquet file or a folder of them (hive partitions such as
``date=2026-11-30/`` included; the partition values are not columns of the log). It is
read file by file in record batches (pyarrow's dataset API), and handed out in chunks
of whole requests, so memory is set by the chunk size, not by the dataset.

What every file must satisfy (checked by :meth:`ParquetDataset.scan`, which reads only
the ``request_id`` column, before anything is evaluated):

- the same columns with the same types as the first file;
- rows sorted by ``request_id`` (a request's rows contiguous, requests in increasing
  order);
- a request's rows all in one file.

Example:
    >>> ds = ParquetDataset("logs/")  # doctest: +SKIP
    >>> index = ds.scan()  # doctest: +SKIP
    >>> for columns, source in ds.chunks(rows=200_000):  # doctest: +SKIP
    ...     traffic = LoggedTraffic.from_columns(columns, source=source)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simulator._log_checks import LogValidationError

__all__ = ["DatasetError", "DatasetIndex", "ParquetDataset", "RequestCursor", "dataset_files"]

REQUEST = "request_id"


class DatasetError(LogValidationError):
    """A dataset breaks a layout rule; the message names the file, row and what is valid."""


def dataset_files(path: str | os.PathLike[str]) -> list[Path]:
    """The Parquet files of a dataset, in a stable order (sorted paths).

    Raises:
        FileNotFoundError: no such file or folder.
        DatasetError: a folder without Parquet files.
    """
    import pyarrow.dataset as pads

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"dataset not found: {p}")
    if p.is_file():
        return [p]
    found = pads.dataset(str(p), format="parquet", partitioning="hive",
                         exclude_invalid_files=False)
    files = sorted(Path(f) for f in found.files)
    if not files:
        raise DatasetError(f"{p}: the folder holds no Parquet files (*.parquet)")
    return files


@dataclass(frozen=True)
class DatasetIndex:
    """What one pass over the ``request_id`` column learned.

    Args:
        files: the files, in reading order.
        rows: ``[F]`` rows per file.
        first_id: ``[F]`` smallest request id of each file.
        last_id: ``[F]`` largest request id of each file.
        requests: ``[F]`` requests per file.
    """

    files: tuple[Path, ...]
    rows: np.ndarray
    first_id: np.ndarray
    last_id: np.ndarray
    requests: np.ndarray

    @property
    def n_rows(self) -> int:
        return int(self.rows.sum())

    @property
    def n_requests(self) -> int:
        return int(self.requests.sum())

    def overlapping(self, low: int, high: int) -> list[int]:
        """Indices of the files whose request ids may lie in ``[low, high]``."""
        hit = (self.first_id <= high) & (self.last_id >= low)
        return [int(i) for i in np.flatnonzero(hit)]


@dataclass(frozen=True)
class ParquetDataset:
    """One Parquet file or a folder of them, read in record batches.

    Args:
        path: the file or folder.
        batch_rows: rows per record batch read.
    """

    path: Path
    batch_rows: int = 65536

    def __init__(self, path: str | os.PathLike[str], batch_rows: int = 65536) -> None:
        object.__setattr__(self, "path", Path(path))
        object.__setattr__(self, "batch_rows", int(batch_rows))
        object.__setattr__(self, "_files", tuple(dataset_files(self.path)))

    @property
    def files(self) -> tuple[Path, ...]:
        return tuple(self.__dict__["_files"])

    def schema(self) -> Any:
        """The pyarrow schema every file shares (that of the first file).

        Raises:
            DatasetError: a file whose columns or types differ from the first's.
        """
        import pyarrow.parquet as pq

        if "_schema" in self.__dict__:  # read the files' footers once
            return self.__dict__["_schema"]
        files = self.files
        first = pq.read_schema(files[0])
        metas = [dict(first.metadata or {})]
        for f in files[1:]:
            other = pq.read_schema(f)
            metas.append(dict(other.metadata or {}))
            if not other.equals(first, check_metadata=False):
                want = {n: str(t) for n, t in zip(first.names, first.types, strict=True)}
                got = {n: str(t) for n, t in zip(other.names, other.types, strict=True)}
                missing = sorted(set(want) - set(got))
                extra = sorted(set(got) - set(want))
                typed = sorted(n for n in set(want) & set(got) if want[n] != got[n])
                diff = "; ".join(x for x in [
                    f"missing column(s) {missing}" if missing else "",
                    f"extra column(s) {extra}" if extra else "",
                    ", ".join(f"column {n!r} is {got[n]}, not {want[n]}" for n in typed),
                ] if x) or f"the columns are in another order: {other.names}"
                raise DatasetError(f"{f}: its schema differs from {files[0]}'s: {diff}; every "
                                   f"file of a dataset needs the columns {first.names}")
        if REQUEST not in first.names:
            raise DatasetError(f"{files[0]}: no column {REQUEST!r}; a dataset's rows are "
                               "grouped by it")
        object.__setattr__(self, "_schema", first)
        object.__setattr__(self, "_metadata", tuple(metas))
        return first

    def metadata(self) -> dict[bytes, bytes]:
        """The schema metadata of the first file (examination curve, label kinds)."""
        return dict(self.schema().metadata or {})

    def file_metadata(self) -> list[tuple[Path, dict[bytes, bytes]]]:
        """``(file, schema metadata)`` of every file, in reading order (footers read once).

        Raises:
            DatasetError: as :meth:`schema`.
        """
        self.schema()
        return list(zip(self.files, self.__dict__["_metadata"], strict=True))

    def _batches(self, file: Path, columns: list[str] | None) -> Iterator[Any]:
        """Record batches of one file (only its own columns: no hive partition fields).

        Read row group by row group (``ParquetFile.iter_batches``): the dataset scanner's
        read-ahead decoded up to 16 batches ahead, 800 MB of one 12.5M-row log file
        against 200 MB here, and cost more CPU.
        """
        import pyarrow.parquet as pq

        with pq.ParquetFile(file) as handle:
            yield from handle.iter_batches(batch_size=self.batch_rows, columns=columns,
                                           use_threads=False)

    def cursor(self, file: int, columns: list[str] | None = None) -> RequestCursor:
        """A forward-only reader of file ``file``'s rows by request-id range (see
        :class:`RequestCursor`)."""
        return RequestCursor(self, file, columns)

    def scan(self) -> DatasetIndex:
        """Check the layout rules on the ``request_id`` column alone and index the files.

        Raises:
            DatasetError: naming the file and row of the first request out of order, split
                inside a file, or split across files; or a schema that differs.
        """
        self.schema()
        rows, first, last, counts, ids_per_file = [], [], [], [], []
        for file in self.files:
            seen: list[np.ndarray] = []
            row, prev = 0, None
            for batch in self._batches(file, [REQUEST]):
                ids = batch.column(0).to_numpy(zero_copy_only=False)
                if ids.dtype.kind not in "iu":
                    raise DatasetError(f"{file}: column {REQUEST!r} must be integers, got "
                                       f"{ids.dtype}")
                ids = ids.astype(np.int64)
                joined = ids if prev is None else np.concatenate([[prev], ids])
                down = np.flatnonzero(np.diff(joined) < 0)
                if len(down):
                    at = int(down[0]) + (0 if prev is None else -1) + 1
                    _out_of_order(file, row + at, int(ids[at]), seen, ids[:at])
                if len(ids):
                    seen.append(np.unique(ids))
                    prev = int(ids[-1])
                row += len(ids)
            uniq = np.unique(np.concatenate(seen)) if seen else np.zeros(0, np.int64)
            rows.append(row)
            counts.append(len(uniq))
            first.append(int(uniq[0]) if len(uniq) else 0)
            last.append(int(uniq[-1]) if len(uniq) else -1)
            ids_per_file.append(uniq)
        _one_file_per_request(self.files, ids_per_file)
        return DatasetIndex(self.files, np.array(rows), np.array(first), np.array(last),
                            np.array(counts))

    def chunks(self, rows: int = 200_000, columns: list[str] | None = None,
               files: list[int] | None = None) -> Iterator[tuple[dict[str, np.ndarray], str]]:
        """Column chunks of whole requests, about ``rows`` rows each, file by file.

        Args:
            rows: rows per chunk (a chunk ends at a request boundary, so it may hold
                more when one request is larger, and the last one of a file fewer).
            columns: the columns to read (None: all the files' own columns).
            files: indices of the files to read (None: all), e.g. one worker's share.

        Yields:
            ``(columns, source)``: name -> ``[rows]`` numpy arrays, and what they are
            (the file and its first row) for messages.
        """
        for columns_, file, start in self.located_chunks(rows, columns, files):
            yield columns_, f"{file} (from row {start})"

    def located_chunks(self, rows: int = 200_000, columns: list[str] | None = None,
                       files: list[int] | None = None
                       ) -> Iterator[tuple[dict[str, np.ndarray], Path, int]]:
        """As :meth:`chunks`, with the file and the file row of each chunk's first row."""
        import pyarrow as pa

        for i in range(len(self.files)) if files is None else files:
            file = self.files[i]
            pending: list[Any] = []
            held, start = 0, 0
            for batch in self._batches(file, columns):
                pending.append(pa.Table.from_batches([batch]))
                held += batch.num_rows
                if held < rows:
                    continue
                table = pa.concat_tables(pending)
                ids = table.column(REQUEST).to_numpy()
                cut = int(np.searchsorted(ids, ids[-1], side="left"))  # last request waits
                if cut == 0:
                    continue
                yield _numpy(table.slice(0, cut)), file, start
                start += cut
                pending, held = [table.slice(cut)], table.num_rows - cut
            if held:
                yield _numpy(pa.concat_tables(pending)), file, start


class RequestCursor:
    """Reads one file's rows request range by request range, forward only.

    The file's rows must be sorted by ``request_id`` (what :meth:`ParquetDataset.scan`
    checks). :meth:`take` hands out the rows of the requests ``low..high`` and keeps the
    record batch it stopped in, so ranges asked in increasing order read the file once, in
    record batches, whatever their number; a range that starts at or before the end of
    the previous one reopens the file and reads it from its first row (correct, but a
    second pass: ``restarts`` counts them).

    Args:
        dataset: the dataset.
        file: index of the file in ``dataset.files``.
        columns: the columns to read (``request_id`` among them; None: all).

    Example:
        >>> cursor = ParquetDataset("scores/").cursor(0)  # doctest: +SKIP
        >>> columns, first_row = cursor.take(0, 999)  # doctest: +SKIP
    """

    def __init__(self, dataset: ParquetDataset, file: int,
                 columns: list[str] | None = None) -> None:
        if columns is not None and REQUEST not in columns:
            columns = [REQUEST, *columns]
        self.dataset, self.file, self.columns = dataset, file, columns
        self.restarts = 0
        self._open()

    @property
    def path(self) -> Path:
        return self.dataset.files[self.file]

    def _open(self) -> None:
        self._batches = self.dataset._batches(self.path, self.columns)
        self._held: list[dict[str, np.ndarray]] = []  # rows read, not yet passed, from _row
        self._row = 0  # file row of the first held row
        self._end: int | None = None  # largest request id handed out so far

    def _reaches(self, high: int) -> bool:
        """Whether the held rows go past request ``high``."""
        return bool(self._held) and len(self._held[-1][REQUEST]) > 0 \
            and self._held[-1][REQUEST][-1] > high

    def take(self, low: int, high: int) -> tuple[dict[str, np.ndarray], int]:
        """The rows of requests ``low..high`` (both included) and the file row of the
        first of them (where they would start, if none).

        Returns:
            ``(columns, row)``: name -> ``[rows]`` numpy arrays, in file order (no
            columns at all if the file has no rows).
        """
        if self._end is not None and low <= self._end:
            self.restarts += 1
            self._open()
        self._end = high
        while not self._reaches(high):
            batch = next(self._batches, None)
            if batch is None:
                break
            self._held.append({n: batch.column(n).to_numpy(zero_copy_only=False)
                               for n in batch.schema.names})
        if not self._held:
            return {}, self._row
        held = self._held[0] if len(self._held) == 1 else {
            n: np.concatenate([h[n] for h in self._held]) for n in self._held[0]}
        ids = held[REQUEST]
        a = int(np.searchsorted(ids, low, side="left"))
        b = int(np.searchsorted(ids, high, side="right"))
        out = {n: v[a:b] for n, v in held.items()}
        row = self._row + a
        self._held = [{n: v[b:] for n, v in held.items()}]
        self._row += b
        return out, row


def _numpy(table: Any) -> dict[str, np.ndarray]:
    return {name: table.column(name).to_numpy() for name in table.column_names}


def _out_of_order(file: Path, row: int, request: int, seen: list[np.ndarray],
                  before: np.ndarray) -> None:
    """Raise for the row where ``request_id`` falls: a request met again, or one out of
    order."""
    earlier = np.concatenate([*seen, before]) if seen or len(before) else before
    if np.isin(request, earlier):
        raise DatasetError(
            f"{file}: row {row}: request {request} appears again after other requests; a "
            f"request's rows must be contiguous (sort the file by {REQUEST})")
    raise DatasetError(
        f"{file}: row {row}: request {request} comes after a larger request id; requests "
        f"must be in increasing {REQUEST} order within a file (sort the file by {REQUEST})")


def _one_file_per_request(files: tuple[Path, ...], ids_per_file: list[np.ndarray]) -> None:
    """Raise naming two files that share a request."""
    if len(files) < 2:
        return
    ids = np.concatenate(ids_per_file)
    owner = np.repeat(np.arange(len(files)), [len(x) for x in ids_per_file])
    order = np.argsort(ids, kind="stable")
    dup = np.flatnonzero(ids[order][1:] == ids[order][:-1])
    if len(dup):
        a, b = owner[order][dup[0]], owner[order][dup[0] + 1]
        request = int(ids[order][dup[0]])
        raise DatasetError(
            f"{files[b]}: request {request} also has rows in {files[a]}; a request's rows "
            "must all lie in one file (write each request to one partition)")
