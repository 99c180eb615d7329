"""Logged traffic: the typed container the simulator replays.

A log holds ``R`` requests; request ``r`` has ``N_r >= 1`` candidates (any number:
requests are *ragged*), of which the logging policy showed some in slots
``0..K-1`` of a page of ``K`` slots. A request may show fewer slots than the
page has (fewer candidates than slots, or a user who saw only some): the slots
it shows are the ones its user could examine, and every estimator values a
target policy on the same slots. On disk it is a long table, one row per
candidate, with these columns:

=================  =======  ==================================================
column             dtype    meaning
=================  =======  ==================================================
``request_id``     int      request the candidate belongs to
``user_id``        int      user of the request (same on every row of it)
``item_id``        int      candidate item (no request lists one twice)
``position``       int      slot it was shown in, ``0..K-1``; ``-1``: not shown;
                            a slot holds at most one row of a request
``pscore_<k>``     float    logging policy's probability of putting this
                            candidate in slot ``k`` (one column per slot);
                            a shown slot's column sums to 1 over the
                            request's candidates
``pscore``         float    the propensity of the shown impression itself,
                            on shown rows (null or 0 elsewhere)
``label_<task>``   float    observed label of a task (``0`` when not shown)
``feature_<name>`` number   any feature (user, item or context)
``prefix_pscore``  float    optional: logging probability of the logged
                            slate's prefix through this row's slot (what
                            the ``rips`` estimator needs); ``(0, 1]`` on
                            shown rows, ignored (``0``) elsewhere
=================  =======  ==================================================

Propensities come in one of two layouts, or both (then they must agree):
``pscore_0..pscore_<K-1>`` for every candidate (what the position-based
estimators ``ips``, ``snips``, ``dr``... and ``pi`` need), or ``pscore`` on the
shown rows only (what production logging records; enough for ``dm`` and the
slot-wise ``slot_ips``, ``slot_snips``, ``slot_dr``). The propensity of a
logged impression must lie in ``(0, 1]``. ``simulator.estimators`` says which
estimator needs which column.

A task's labels are ``binary`` (0 or 1: click, conversion, like), the
default, or ``continuous`` (finite amounts >= 0: watch time, revenue). The
kinds travel in the Parquet metadata under ``fusiontune.label_kinds``, a JSON
object ``{"<task>": "binary" | "continuous"}`` (a task it omits is binary);
for a CSV log pass ``label_kinds`` to :meth:`LoggedTraffic.read` or
:meth:`LoggedTraffic.from_columns`. The examination curve of a
position-based model (probability that slot ``k`` is looked at), when known,
travels in the Parquet metadata under ``fusiontune.examination`` (a JSON list,
one value per slot); a CSV log cannot carry it. The page size ``K`` of a log
with only ``pscore`` is the examination curve's length, else (and in the
Parquet metadata ``fusiontune.slots``) one more than its largest position.

In memory every per-candidate array is padded ``[R, N]`` with ``N = max_r N_r``
(``pscores``: ``[R, N, K]``), rows sorted by request id, a request's candidates
in their logged order and its padding after them. ``valid`` ``[R, N]`` marks
the candidates; it is None when every request has ``N`` (a dense log, whose
arrays and numbers are exactly those of a log without padding). Padding is
never shown, has item ``-1`` (from a file), no labels and propensities 0; a
policy never ranks it. For requests of 10 to 40 candidates (mean 25) the padded
layout holds 40 / 25 = 1.6x the cells of the rows on disk (``bench/ragged_replay.py``:
71 MB for 20,000 such requests against 44 MB for a dense log of 25 candidates).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from simulator._log_checks import (
    BINARY,
    CONTINUOUS,
    LABEL_KINDS,
    LogValidationError,
    check_traffic,
    full_kinds,
)
from simulator._log_columns import (
    FEATURE_PREFIX,
    LABEL_PREFIX,
    PREFIX_PSCORE,
    PSCORE_PREFIX,
    SHOWN_PSCORE,
    dense_arrays,
    group_requests,
    read_columns,
)
from simulator.files import atomic_write

__all__ = ["BINARY", "CONTINUOUS", "FEATURE_PREFIX", "LABEL_KINDS", "LogValidationError",
           "LoggedTraffic", "log_metadata", "read_log_metadata"]

_CHECKED: ContextVar[bool] = ContextVar("fusiontune_log_checked", default=False)
"""True while :meth:`LoggedTraffic.from_columns` builds columns that already passed
:func:`check_traffic` (``checked=True``): the checks are not run a second time."""
_METADATA_KEY = b"fusiontune.examination"
_KINDS_KEY = b"fusiontune.label_kinds"
_SLOTS_KEY = b"fusiontune.slots"


@dataclass(frozen=True)
class LoggedTraffic:
    """Logged traffic of ``R`` requests of up to ``N`` candidates, page size ``K``.

    Args:
        request_ids: ``[R]`` int64, unique (increasing when read from a file).
        user_ids: ``[R]`` int64.
        item_ids: ``[R, N]`` int64.
        positions: ``[R, N]`` int64, ``-1`` for not shown, else the slot ``0..K-1``;
            a slot holds at most one candidate of a request.
        pscores: ``[R, N, K]`` float64, the logging policy's marginal probability
            of each candidate in each slot; None for a log that carries only
            ``shown_pscores``.
        labels: task name -> ``[R, N]`` float64 observed labels (``0`` if not shown).
        features: feature name -> ``[R, N]`` array.
        examination: ``[K]`` examination probability of each slot, if known.
        prefix_pscores: ``[R, N]`` optional, the logging probability of the
            logged slate's prefix through the slot of each shown row (``0``
            where not shown), e.g. from :meth:`EpsilonGreedyTopK.prefix_probabilities`.
        label_kinds: task -> :data:`BINARY` (labels 0 or 1, the default for a task
            not named) or :data:`CONTINUOUS` (finite labels >= 0); after
            construction it names every task.
        valid: ``[R, N]`` bool, True on a request's candidates (first), False on its
            padding (after); None: every request has ``N`` candidates (after
            construction, also when the array given is all True).
        shown_pscores: ``[R, N]`` float64 optional, the logging propensity of each
            shown impression (the column ``pscore``), 0 where not shown.
        slots: the page size ``K`` when ``pscores`` is None (else ``pscores``' last
            axis); default: the examination curve's length, else one more than the
            largest position.

    Raises:
        LogValidationError: the first check that fails (shapes, slots, a repeated
            item, propensities, labels of their kind, examination), naming the
            column, the request and the row of :meth:`to_columns`.

    Example:
        >>> traffic = LoggedTraffic.read("logs.parquet")  # doctest: +SKIP
        >>> search, holdout = traffic.split(0.5, seed=0)  # doctest: +SKIP
    """

    request_ids: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray
    positions: np.ndarray
    pscores: np.ndarray | None
    labels: Mapping[str, np.ndarray]
    features: Mapping[str, np.ndarray] = field(default_factory=dict)
    examination: np.ndarray | None = None
    prefix_pscores: np.ndarray | None = None
    label_kinds: Mapping[str, str] = field(default_factory=dict)
    valid: np.ndarray | None = None
    shown_pscores: np.ndarray | None = None
    slots: int | None = None

    def __post_init__(self) -> None:
        if self.valid is not None and np.asarray(self.valid).all():
            object.__setattr__(self, "valid", None)  # dense: the dense path, the same numbers
        if self.pscores is None and self.slots is None:
            slots = (len(self.examination) if self.examination is not None
                     else int(np.max(self.positions, initial=-1)) + 1)
            object.__setattr__(self, "slots", max(slots, 1))
        if not _CHECKED.get():
            check_traffic(self)
        object.__setattr__(self, "label_kinds", full_kinds(self.labels, self.label_kinds))

    # ------------------------------------------------------------------ shape
    @property
    def n_requests(self) -> int:
        return int(self.item_ids.shape[0])

    @property
    def n_candidates(self) -> int:
        return int(self.item_ids.shape[1])

    @property
    def slate_size(self) -> int:
        """The page size ``K``."""
        return int(self.pscores.shape[2]) if self.pscores is not None else int(self.slots or 0)

    @property
    def candidate_counts(self) -> np.ndarray:
        """``[R]`` int64 number of candidates of each request."""
        if self.valid is None:
            return np.full(self.n_requests, self.n_candidates, dtype=np.int64)
        return self.valid.sum(axis=1).astype(np.int64)

    @functools.cached_property
    def slot_shown(self) -> np.ndarray:
        """``[R, K]`` bool, True where the request shows slot ``k`` (computed once: the
        checks, the exposure and the feedback all ask; read-only)."""
        out = np.zeros((self.n_requests, self.slate_size), dtype=bool)
        rr, cc = np.nonzero(self.shown)
        out[rr, self.positions[rr, cc]] = True
        out.flags.writeable = False
        return out

    def request_examination(self, examination: np.ndarray | None = None) -> np.ndarray:
        """The examination curve each request's user had: ``[K]``, or ``[R, K]`` if ragged.

        ``examination[k]`` (default: the log's curve) where the request shows slot ``k``,
        else 0: a target policy is valued on the slots the request shows. ``[K]`` itself
        when every request shows every slot (today's dense logs, the same numbers).

        Raises:
            ValueError: no curve given and the log carries none.
        """
        exam = self.examination if examination is None else np.asarray(examination, float)
        if exam is None:
            raise ValueError("the log carries no examination curve; pass one")
        seen = self.slot_shown
        return exam if seen.all() else exam[None, :] * seen

    def logging_exposure(self, examination: np.ndarray | None = None) -> np.ndarray:
        """``[R, N]`` float64 the logging policy's exposure of each candidate,
        ``pscores @ examination`` over the slots each request shows
        (:meth:`request_examination`).

        Raises:
            ValueError: the log has no ``pscore_<k>`` columns, or no curve.
        """
        if self.pscores is None:
            raise ValueError("the logging exposure needs the log's pscore_<k> columns")
        curve = self.request_examination(examination)
        if curve.ndim == 1:
            return np.asarray(self.pscores @ curve, dtype=np.float64)
        return np.matmul(self.pscores, curve[:, :, None])[..., 0].astype(np.float64)

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.labels)

    @property
    def shown(self) -> np.ndarray:
        """``[R, N]`` bool, True where the candidate was shown."""
        return self.positions >= 0

    def logged_propensity(self) -> np.ndarray:
        """``[R, N]`` propensity of each logged impression (``nan`` where not shown)."""
        if self.pscores is None:
            assert self.shown_pscores is not None
            return np.where(self.shown, self.shown_pscores, np.nan)
        slot = np.where(self.shown, self.positions, 0)
        p = np.take_along_axis(self.pscores, slot[..., None], axis=2)[..., 0]
        return np.where(self.shown, p, np.nan)

    def shown_only(self) -> LoggedTraffic:
        """The log as production logging records it: only each shown impression's
        propensity (``shown_pscores``, 0 where not shown), no per-slot ``pscores`` or
        prefix columns; the page size kept."""
        return dataclasses.replace(
            self, pscores=None, prefix_pscores=None, slots=self.slate_size,
            shown_pscores=np.nan_to_num(self.logged_propensity(), nan=0.0))

    def label_matrix(self, tasks: tuple[str, ...] | None = None) -> np.ndarray:
        """``[R, N, T]`` labels stacked in the order of ``tasks`` (default: all)."""
        tasks = self.tasks if tasks is None else tasks
        missing = [t for t in tasks if t not in self.labels]
        if missing:
            raise KeyError(f"unknown task(s) {missing}; the log has {list(self.tasks)}")
        return np.stack([self.labels[t] for t in tasks], axis=-1)

    # -------------------------------------------------------------- slicing
    def take(self, requests: np.ndarray) -> LoggedTraffic:
        """The sub-log of the requests at the given row indices (sorted)."""
        idx = np.sort(np.asarray(requests))

        def opt(arr: np.ndarray | None) -> np.ndarray | None:
            return None if arr is None else arr[idx]

        return LoggedTraffic(
            request_ids=self.request_ids[idx],
            user_ids=self.user_ids[idx],
            item_ids=self.item_ids[idx],
            positions=self.positions[idx],
            pscores=opt(self.pscores),
            labels={k: v[idx] for k, v in self.labels.items()},
            features={k: v[idx] for k, v in self.features.items()},
            examination=self.examination,
            prefix_pscores=opt(self.prefix_pscores),
            label_kinds=self.label_kinds,
            valid=opt(self.valid),
            shown_pscores=opt(self.shown_pscores),
            slots=self.slots,
        )

    @staticmethod
    def concatenate(parts: Sequence[LoggedTraffic]) -> LoggedTraffic:
        """The requests of several logs with equal pages, tasks and features, in order.

        Parts of different widths (ragged chunks) are padded to the widest.
        """
        first = parts[0]
        width = max(p.n_candidates for p in parts)

        def cat(get: Any, fill: float = 0) -> np.ndarray:
            arrays = []
            for p in parts:
                arr = np.asarray(get(p))
                if arr.ndim >= 2 and arr.shape[1] < width:
                    pad = [(0, 0)] * arr.ndim
                    pad[1] = (0, width - arr.shape[1])
                    arr = np.pad(arr, pad, constant_values=fill)
                arrays.append(arr)
            return np.concatenate(arrays)

        def opt(get: Any) -> np.ndarray | None:
            return None if get(first) is None else cat(get)

        ragged = any(p.valid is not None or p.n_candidates < width for p in parts)
        return LoggedTraffic(
            request_ids=cat(lambda p: p.request_ids),
            user_ids=cat(lambda p: p.user_ids),
            item_ids=cat(lambda p: p.item_ids, -1),
            positions=cat(lambda p: p.positions, -1),
            pscores=opt(lambda p: p.pscores),
            labels={k: cat(lambda p, k=k: p.labels[k]) for k in first.labels},
            features={k: cat(lambda p, k=k: p.features[k]) for k in first.features},
            examination=first.examination,
            prefix_pscores=opt(lambda p: p.prefix_pscores),
            label_kinds=first.label_kinds,
            valid=cat(lambda p: _valid(p), False) if ragged else None,
            shown_pscores=opt(lambda p: p.shown_pscores),
            slots=first.slots,
        )

    def split(self, fraction: float, seed: int) -> tuple[LoggedTraffic, LoggedTraffic]:
        """Split by request into (``fraction``, ``1 - fraction``) parts, seeded.

        Raises:
            ValueError: if ``fraction`` is not strictly between 0 and 1.
        """
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"split fraction must be in (0, 1), got {fraction}")
        perm = np.random.default_rng(seed).permutation(self.n_requests)
        cut = int(round(fraction * self.n_requests))
        if cut == 0 or cut == self.n_requests:
            raise ValueError(
                f"split fraction {fraction} of {self.n_requests} requests leaves a part empty"
            )
        return self.take(perm[:cut]), self.take(perm[cut:])

    def fingerprint(self) -> str:
        """sha256 of the log's content (first 16 hex digits).

        A ragged log hashes its candidates only (not its padding), so the same requests
        give the same fingerprint however wide they were padded.
        """
        h = hashlib.sha256()
        cells = (lambda a: a) if self.valid is None else (lambda a: a[self.valid])
        if self.valid is not None:
            h.update(b"ragged")
            h.update(self.candidate_counts.tobytes())
        for arr in [self.request_ids, self.user_ids, cells(self.item_ids),
                    cells(self.positions)]:
            h.update(np.ascontiguousarray(arr).tobytes())
        if self.pscores is not None:
            h.update(np.ascontiguousarray(cells(self.pscores)).tobytes())
        if self.prefix_pscores is not None:  # only when present: old fingerprints hold
            h.update(np.ascontiguousarray(cells(self.prefix_pscores)).tobytes())
        if self.shown_pscores is not None:
            h.update(b"pscore")
            h.update(np.ascontiguousarray(cells(self.shown_pscores)).tobytes())
        for mapping in (self.labels, self.features):
            for k in sorted(mapping):
                h.update(k.encode())
                h.update(np.ascontiguousarray(cells(mapping[k])).tobytes())
        return h.hexdigest()[:16]

    # ------------------------------------------------------------ long table
    def to_columns(self) -> dict[str, np.ndarray]:
        """Long-format columns, one row per candidate (request-major; no padding)."""
        r, n = self.item_ids.shape
        if self.valid is None:
            def flat(a: np.ndarray) -> np.ndarray:
                return a.reshape(-1)
            counts: Any = n
        else:
            valid = self.valid

            def flat(a: np.ndarray) -> np.ndarray:
                return a[valid]
            counts = self.candidate_counts
        cols: dict[str, np.ndarray] = {
            "request_id": np.repeat(self.request_ids, counts),
            "user_id": np.repeat(self.user_ids, counts),
            "item_id": flat(self.item_ids),
            "position": flat(self.positions),
        }
        if self.pscores is not None:
            for k in range(self.slate_size):
                cols[f"{PSCORE_PREFIX}{k}"] = flat(self.pscores[:, :, k])
        if self.shown_pscores is not None:
            cols[SHOWN_PSCORE] = flat(self.shown_pscores)
        if self.prefix_pscores is not None:
            cols[PREFIX_PSCORE] = flat(self.prefix_pscores)
        for t, v in self.labels.items():
            cols[f"{LABEL_PREFIX}{t}"] = flat(v)
        for f, v in self.features.items():
            cols[f"{FEATURE_PREFIX}{f}"] = flat(v)
        return cols

    @classmethod
    def from_columns(
        cls,
        columns: Mapping[str, np.ndarray],
        examination: np.ndarray | None = None,
        source: str = "log",
        label_kinds: Mapping[str, str] | None = None,
        checked: bool = False,
    ) -> LoggedTraffic:
        """Validate long-format columns and build the dense container.

        Args:
            columns: column name -> ``[rows]`` (see the module docstring); requests may
                have any number of rows.
            examination: ``[K]`` examination curve, if known (for a log with only
                ``pscore``, it also gives the page size).
            source: what the columns came from (a file name), for messages.
            label_kinds: task -> :data:`BINARY` or :data:`CONTINUOUS`; tasks not
                named are binary.
            checked: the same columns (same examination and kinds) already passed these
                checks, e.g. on an earlier pass over an unchanged file: the value checks
                of :func:`check_traffic` are skipped (the columns are still read, grouped
                and laid out as always, so the container is the same).

        Raises:
            LogValidationError: naming ``source``, the column and the first bad row.
        """
        cols = read_columns(columns, source)
        requests = group_requests(cols, source)
        arrays = dense_arrays(cols, requests, examination)
        token = _CHECKED.set(checked)
        try:
            return cls(**arrays, label_kinds=dict(label_kinds or {}),
                       examination=None if examination is None
                       else np.asarray(examination, dtype=np.float64))
        except LogValidationError as err:
            raise err.located(source, requests.rows) from None
        finally:
            _CHECKED.reset(token)

    # ------------------------------------------------------------------- I/O
    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write as Parquet, atomically (a temporary file renamed into place).

        The examination curve and the label kinds go in the schema metadata.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = Path(path)
        table = pa.table(self.to_columns())
        # the page size goes too where no pscore_<k> column gives it
        meta = log_metadata(self.examination, self.label_kinds,
                            self.slate_size if self.pscores is None else None)
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
        atomic_write(path, lambda tmp: pq.write_table(table, tmp))
        return path

    @classmethod
    def read(cls, path: str | os.PathLike[str],
             label_kinds: Mapping[str, str] | None = None) -> LoggedTraffic:
        """Read a Parquet (``.parquet``) or CSV (``.csv``) log and validate it.

        Args:
            path: the file.
            label_kinds: task -> kind, for a CSV log (a Parquet log carries its own;
                given, these replace them).

        Raises:
            FileNotFoundError: if ``path`` does not exist.
            LogValidationError: if the table is malformed.
        """
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"log file not found: {path}")
        examination, kinds, slots = None, None, None
        if path.suffix == ".csv":
            table = pacsv.read_csv(path)
        elif path.suffix in (".parquet", ".pq"):
            table = pq.read_table(path)
            meta = table.schema.metadata or {}
            examination, kinds, slots = read_log_metadata(meta, path)
        else:
            raise LogValidationError(
                f"{path}: unknown log format {path.suffix!r}; valid: .parquet, .pq, .csv"
            )
        columns = {name: table.column(name).to_numpy(zero_copy_only=False)
                   for name in table.column_names}
        traffic = cls.from_columns(
            columns, None if examination is None else np.asarray(examination, np.float64),
            str(path), label_kinds if label_kinds is not None else kinds)
        if slots is not None and traffic.pscores is None and slots != traffic.slate_size:
            try:
                traffic = dataclasses.replace(traffic, slots=int(slots))
            except LogValidationError as err:
                raise LogValidationError(f"{path}: {err}") from None
        return traffic

    def with_examination(self, examination: Sequence[float] | np.ndarray) -> LoggedTraffic:
        """The same log with another examination curve (``[K]`` values in ``(0, 1]``).

        A log with only ``pscore`` takes its page size from the curve.
        """
        exam = np.asarray(examination, dtype=np.float64)
        if self.pscores is None:
            return dataclasses.replace(self, examination=exam, slots=len(exam))
        return dataclasses.replace(self, examination=exam)


def log_metadata(examination: np.ndarray | Sequence[float] | None,
                 label_kinds: Mapping[str, str], slots: int | None = None
                 ) -> dict[bytes, bytes]:
    """The Parquet schema metadata a log file carries: its label kinds, examination curve
    (if known) and page size (for a log without ``pscore_<k>`` columns)."""
    meta = {_KINDS_KEY: json.dumps(dict(label_kinds)).encode()}
    if examination is not None:
        meta[_METADATA_KEY] = json.dumps([float(x) for x in examination]).encode()
    if slots is not None:
        meta[_SLOTS_KEY] = json.dumps(int(slots)).encode()
    return meta


def read_log_metadata(meta: Mapping[bytes, bytes], path: str | os.PathLike[str]
                      ) -> tuple[list[float] | None, dict[str, str] | None, int | None]:
    """``(examination, label kinds, slots)`` of :func:`log_metadata` (None where absent).

    Raises:
        LogValidationError: a value of the wrong JSON type, naming ``path`` and the key.
    """
    return (_metadata(meta, _METADATA_KEY, Path(path), list),
            _metadata(meta, _KINDS_KEY, Path(path), dict),
            _metadata(meta, _SLOTS_KEY, Path(path), int))


def _metadata(meta: Mapping[bytes, bytes], key: bytes, path: Path, kind: type) -> Any:
    """The JSON value of a schema-metadata key (None if absent), of type ``kind``."""
    if key not in meta:
        return None
    try:
        value = json.loads(meta[key])
    except ValueError:
        value = None
    if not isinstance(value, kind) or isinstance(value, bool):
        what = {list: "list", dict: "object", int: "integer"}[kind]
        raise LogValidationError(
            f"{path}: Parquet metadata {key.decode()!r} must be a JSON {what}, got "
            f"{meta[key][:80]!r}")
    return value


def _valid(traffic: LoggedTraffic) -> np.ndarray:
    """``[R, N]`` the log's candidate mask, all True for a dense log."""
    if traffic.valid is None:
        return np.ones(traffic.item_ids.shape, dtype=bool)
    return traffic.valid
