"""Logged traffic: the typed container the simulator replays.

A log holds ``R`` requests, each with the same number ``N`` of candidates, of
which the logging policy showed ``K`` in slots ``0..K-1``. On disk it is a long
table, one row per candidate, with these columns:

=================  =======  ==================================================
column             dtype    meaning
=================  =======  ==================================================
``request_id``     int      request the candidate belongs to
``user_id``        int      user of the request (same on every row of it)
``item_id``        int      candidate item
``position``       int      slot it was shown in, ``0..K-1``; ``-1``: not shown
``pscore_<k>``     float    logging policy's probability of putting this
                            candidate in slot ``k`` (one column per slot)
``label_<task>``   float    observed label of a task (``0`` when not shown)
``feature_<name>`` number   any feature (user, item or context)
``prefix_pscore``  float    optional: logging probability of the logged
                            slate's prefix through this row's slot (what
                            the ``rips`` estimator needs); ``(0, 1]`` on
                            shown rows, ignored (``0``) elsewhere
=================  =======  ==================================================

``pscore_<k>`` for the logged slot is *the* propensity of the logged
impression; it must lie in ``(0, 1]``. The examination curve of a
position-based model (probability that slot ``k`` is looked at), when known,
travels in the Parquet metadata.

In memory every per-candidate array is dense ``[R, N]`` (``pscores``:
``[R, N, K]``), rows sorted by request id, candidates in their logged order.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["LogValidationError", "LoggedTraffic"]

LABEL_PREFIX = "label_"
FEATURE_PREFIX = "feature_"
PSCORE_PREFIX = "pscore_"
PREFIX_PSCORE = "prefix_pscore"
_KEY_COLUMNS = ("request_id", "user_id", "item_id", "position")
_METADATA_KEY = b"fusiontune.examination"


class LogValidationError(ValueError):
    """A logged-traffic table is malformed; the message names column and row."""


@dataclass(frozen=True)
class LoggedTraffic:
    """Dense logged traffic of ``R`` requests x ``N`` candidates, slate size ``K``.

    Args:
        request_ids: ``[R]`` int64, strictly increasing.
        user_ids: ``[R]`` int64.
        item_ids: ``[R, N]`` int64.
        positions: ``[R, N]`` int64, ``-1`` for not shown, else the slot ``0..K-1``;
            every slot is used exactly once per request.
        pscores: ``[R, N, K]`` float64, the logging policy's marginal probability
            of each candidate in each slot.
        labels: task name -> ``[R, N]`` float64 observed labels (``0`` if not shown).
        features: feature name -> ``[R, N]`` array.
        examination: ``[K]`` examination probability of each slot, if known.
        prefix_pscores: ``[R, N]`` optional, the logging probability of the
            logged slate's prefix through the slot of each shown row (``0``
            where not shown), e.g. from :meth:`EpsilonGreedyTopK.prefix_probabilities`.

    Example:
        >>> traffic = LoggedTraffic.read("logs.parquet")  # doctest: +SKIP
        >>> search, holdout = traffic.split(0.5, seed=0)  # doctest: +SKIP
    """

    request_ids: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray
    positions: np.ndarray
    pscores: np.ndarray
    labels: Mapping[str, np.ndarray]
    features: Mapping[str, np.ndarray] = field(default_factory=dict)
    examination: np.ndarray | None = None
    prefix_pscores: np.ndarray | None = None

    def __post_init__(self) -> None:
        r, n = self.item_ids.shape
        if self.pscores.ndim != 3 or self.pscores.shape[:2] != (r, n):
            raise LogValidationError(
                f"pscores must have shape [R, N, K] = [{r}, {n}, K], got {self.pscores.shape}"
            )
        for name, arr in [("request_ids", self.request_ids), ("user_ids", self.user_ids)]:
            if arr.shape != (r,):
                raise LogValidationError(f"{name} must have shape [{r}], got {arr.shape}")
        for name, arr in [("positions", self.positions), *self.labels.items(),
                          *self.features.items()]:
            if arr.shape != (r, n):
                raise LogValidationError(f"{name} must have shape [{r}, {n}], got {arr.shape}")
        if not self.labels:
            raise LogValidationError("a log needs at least one label_<task> column")
        if self.examination is not None and self.examination.shape != (self.slate_size,):
            raise LogValidationError(
                f"examination must have one value per slot ({self.slate_size}), "
                f"got shape {self.examination.shape}"
            )
        if self.prefix_pscores is not None:
            if self.prefix_pscores.shape != (r, n):
                raise LogValidationError(f"prefix_pscores must have shape [{r}, {n}], "
                                         f"got {self.prefix_pscores.shape}")
            pp = np.where(self.positions >= 0, self.prefix_pscores, 1.0)
            bad = ~((pp > 0) & (pp <= 1))
            if bad.any():
                req, cand = np.argwhere(bad)[0]
                raise LogValidationError(
                    f"prefix_pscores[{req}, {cand}] = {pp[req, cand]}: the probability of a "
                    "logged prefix must be in (0, 1]")

    # ------------------------------------------------------------------ shape
    @property
    def n_requests(self) -> int:
        return int(self.item_ids.shape[0])

    @property
    def n_candidates(self) -> int:
        return int(self.item_ids.shape[1])

    @property
    def slate_size(self) -> int:
        return int(self.pscores.shape[2])

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.labels)

    @property
    def shown(self) -> np.ndarray:
        """``[R, N]`` bool, True where the candidate was shown."""
        return self.positions >= 0

    def logged_propensity(self) -> np.ndarray:
        """``[R, N]`` propensity of each logged impression (``nan`` where not shown)."""
        slot = np.where(self.shown, self.positions, 0)
        p = np.take_along_axis(self.pscores, slot[..., None], axis=2)[..., 0]
        return np.where(self.shown, p, np.nan)

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
        return LoggedTraffic(
            request_ids=self.request_ids[idx],
            user_ids=self.user_ids[idx],
            item_ids=self.item_ids[idx],
            positions=self.positions[idx],
            pscores=self.pscores[idx],
            labels={k: v[idx] for k, v in self.labels.items()},
            features={k: v[idx] for k, v in self.features.items()},
            examination=self.examination,
            prefix_pscores=None if self.prefix_pscores is None else self.prefix_pscores[idx],
        )

    @staticmethod
    def concatenate(parts: Sequence[LoggedTraffic]) -> LoggedTraffic:
        """The requests of several logs with equal shapes, tasks and features, in order."""
        first = parts[0]

        def cat(get: Any) -> np.ndarray:
            return np.concatenate([get(p) for p in parts])

        return LoggedTraffic(
            request_ids=cat(lambda p: p.request_ids),
            user_ids=cat(lambda p: p.user_ids),
            item_ids=cat(lambda p: p.item_ids),
            positions=cat(lambda p: p.positions),
            pscores=cat(lambda p: p.pscores),
            labels={k: cat(lambda p, k=k: p.labels[k]) for k in first.labels},
            features={k: cat(lambda p, k=k: p.features[k]) for k in first.features},
            examination=first.examination,
            prefix_pscores=None if first.prefix_pscores is None
            else cat(lambda p: p.prefix_pscores),
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
        """sha256 of the log's content (first 16 hex digits)."""
        h = hashlib.sha256()
        for arr in [self.request_ids, self.user_ids, self.item_ids, self.positions,
                    self.pscores]:
            h.update(np.ascontiguousarray(arr).tobytes())
        if self.prefix_pscores is not None:  # only when present: old fingerprints hold
            h.update(np.ascontiguousarray(self.prefix_pscores).tobytes())
        for mapping in (self.labels, self.features):
            for k in sorted(mapping):
                h.update(k.encode())
                h.update(np.ascontiguousarray(mapping[k]).tobytes())
        return h.hexdigest()[:16]

    # ------------------------------------------------------------ long table
    def to_columns(self) -> dict[str, np.ndarray]:
        """Long-format columns, one row per candidate (request-major)."""
        r, n = self.item_ids.shape
        cols: dict[str, np.ndarray] = {
            "request_id": np.repeat(self.request_ids, n),
            "user_id": np.repeat(self.user_ids, n),
            "item_id": self.item_ids.reshape(-1),
            "position": self.positions.reshape(-1),
        }
        for k in range(self.slate_size):
            cols[f"{PSCORE_PREFIX}{k}"] = self.pscores[:, :, k].reshape(-1)
        if self.prefix_pscores is not None:
            cols[PREFIX_PSCORE] = self.prefix_pscores.reshape(-1)
        for t, v in self.labels.items():
            cols[f"{LABEL_PREFIX}{t}"] = v.reshape(-1)
        for f, v in self.features.items():
            cols[f"{FEATURE_PREFIX}{f}"] = v.reshape(-1)
        return cols

    @classmethod
    def from_columns(
        cls,
        columns: Mapping[str, np.ndarray],
        examination: np.ndarray | None = None,
        source: str = "log",
    ) -> LoggedTraffic:
        """Validate long-format columns and build the dense container.

        Raises:
            LogValidationError: naming ``source``, the column and the first bad row.
        """
        return _from_columns(columns, examination, source)

    # ------------------------------------------------------------------- I/O
    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write as Parquet, atomically (a temporary file renamed into place)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = Path(path)
        table = pa.table(self.to_columns())
        if self.examination is not None:
            meta = {_METADATA_KEY: json.dumps([float(x) for x in self.examination]).encode()}
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
        _atomic_write(path, lambda tmp: pq.write_table(table, tmp))
        return path

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> LoggedTraffic:
        """Read a Parquet (``.parquet``) or CSV (``.csv``) log and validate it.

        Raises:
            FileNotFoundError: if ``path`` does not exist.
            LogValidationError: if the table is malformed.
        """
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"log file not found: {path}")
        examination = None
        if path.suffix == ".csv":
            table = pacsv.read_csv(path)
        elif path.suffix in (".parquet", ".pq"):
            table = pq.read_table(path)
            meta = table.schema.metadata or {}
            if _METADATA_KEY in meta:
                examination = np.asarray(json.loads(meta[_METADATA_KEY]), dtype=np.float64)
        else:
            raise LogValidationError(
                f"{path}: unknown log format {path.suffix!r}; valid: .parquet, .pq, .csv"
            )
        columns = {name: table.column(name).to_numpy(zero_copy_only=False)
                   for name in table.column_names}
        return _from_columns(columns, examination, str(path))


def _atomic_write(path: Path, write: Any) -> None:
    """Call ``write(tmp_path)`` then rename into ``path``; no partial file is left."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


_Fail = Callable[[str], LogValidationError]


def _from_columns(
    columns: Mapping[str, np.ndarray], examination: np.ndarray | None, source: str
) -> LoggedTraffic:
    """Validate a long table and build the dense log; each stage raises on its first fault."""

    def fail(msg: str) -> LogValidationError:
        return LogValidationError(f"{source}: {msg}")

    pscore_cols, label_cols = _column_names(columns, fail)
    k = len(pscore_cols)
    prefix_cols = [PREFIX_PSCORE] if PREFIX_PSCORE in columns else []
    numeric = _numeric_columns(columns, [*pscore_cols, *label_cols, *prefix_cols], fail)
    grid = _RequestGrid.of(numeric["request_id"], k, fail)
    dense = grid.dense

    user = dense(numeric["user_id"])
    bad = user != user[:, :1]
    if bad.any():
        raise fail(f"column 'user_id' row {int(grid.rows[bad][0])}: a request has more than "
                   "one user")
    positions = dense(numeric["position"])
    _check_positions(positions, numeric["position"], grid, k, fail)
    shown = positions >= 0
    pscores = np.stack([dense(numeric[c]) for c in pscore_cols], axis=-1)
    _check_pscores(pscores, positions, pscore_cols, grid, fail)

    labels = {c[len(LABEL_PREFIX):]: dense(numeric[c]) for c in label_cols}
    for name, lab in labels.items():
        bad = ~shown & (lab != 0)
        if bad.any():
            raise fail(f"column '{LABEL_PREFIX}{name}' row {int(grid.rows[bad][0])}: a "
                       "candidate that was not shown (position -1) has a non-zero label")
    features = {c[len(FEATURE_PREFIX):]: dense(numeric[c])
                for c in numeric if c.startswith(FEATURE_PREFIX)}
    if examination is not None:
        examination = np.asarray(examination, dtype=np.float64)
        if examination.shape != (k,) or not ((examination > 0) & (examination <= 1)).all():
            raise fail(f"examination curve must be {k} values in (0, 1], got {examination}")
    prefix = None
    if prefix_cols:
        prefix = np.where(shown, dense(numeric[PREFIX_PSCORE]), 0.0)
        bad = shown & ~((prefix > 0) & (prefix <= 1))
        if bad.any():
            row = int(grid.rows[bad][0])
            raise fail(f"column '{PREFIX_PSCORE}' row {row}: probability "
                       f"{numeric[PREFIX_PSCORE][row]} of a logged prefix must be in (0, 1]")
    return LoggedTraffic(
        request_ids=grid.request_ids.astype(np.int64),
        user_ids=user[:, 0].copy(),
        item_ids=dense(numeric["item_id"]),
        positions=positions,
        pscores=pscores,
        labels=labels,
        features=features,
        examination=examination,
        prefix_pscores=prefix,
    )


def _column_names(columns: Mapping[str, np.ndarray], fail: _Fail) -> tuple[list[str], list[str]]:
    """``(pscore columns by slot, label columns)``, once the key columns are all there."""
    missing = [c for c in _KEY_COLUMNS if c not in columns]
    if missing:
        raise fail(
            f"missing column(s) {missing}; a log needs {list(_KEY_COLUMNS)}, "
            f"{PSCORE_PREFIX}<slot>, and {LABEL_PREFIX}<task> columns"
        )
    pscore_cols = sorted(
        (c for c in columns if c.startswith(PSCORE_PREFIX)),
        key=lambda c: int(c[len(PSCORE_PREFIX):]) if c[len(PSCORE_PREFIX):].isdigit() else -1,
    )
    if not pscore_cols:
        raise fail(f"missing column(s) {PSCORE_PREFIX}0..{PSCORE_PREFIX}<K-1> "
                   "(logging propensity of each slot)")
    expected = [f"{PSCORE_PREFIX}{j}" for j in range(len(pscore_cols))]
    if pscore_cols != expected:
        raise fail(f"propensity columns must be {expected}, got {pscore_cols}")
    label_cols = [c for c in columns if c.startswith(LABEL_PREFIX)]
    if not label_cols:
        raise fail(f"missing label columns: a log needs at least one {LABEL_PREFIX}<task>")
    return pscore_cols, label_cols


def _numeric_columns(
    columns: Mapping[str, np.ndarray], float_cols: Sequence[str], fail: _Fail
) -> dict[str, np.ndarray]:
    """Every column as a numeric ``[rows]`` array: key columns int64, ``float_cols`` finite
    float64, the rest (features) as given."""
    n_rows = len(columns["request_id"])
    if n_rows == 0:
        raise fail("the log has no rows")
    numeric: dict[str, np.ndarray] = {}
    for name, values in columns.items():
        arr = np.asarray(values)
        if len(arr) != n_rows:
            raise fail(f"column {name!r} has {len(arr)} rows, expected {n_rows}")
        if arr.dtype.kind not in "biuf":
            raise fail(f"column {name!r} must be numeric, got dtype {arr.dtype}")
        numeric[name] = arr
    for name in _KEY_COLUMNS:
        arr = numeric[name]
        if arr.dtype.kind == "f":
            bad = ~np.isfinite(arr) | (arr != np.round(arr))
            if bad.any():
                raise fail(f"column {name!r} row {_first_bad(bad)}: must be an integer, "
                           f"got {arr[_first_bad(bad)]}")
        numeric[name] = arr.astype(np.int64)
    for name in float_cols:
        arr = numeric[name].astype(np.float64)
        bad = ~np.isfinite(arr)
        if bad.any():
            row = _first_bad(bad)
            raise fail(f"column {name!r} row {row}: value {arr[row]} is not finite "
                       "(labels and propensities must be numbers)")
        numeric[name] = arr
    return numeric


@dataclass(frozen=True)
class _RequestGrid:
    """Where each row of the long table goes in the dense ``[R, N]`` arrays.

    Args:
        order: ``[R * N]`` row indices, stably sorted by request id.
        request_ids: ``[R]`` the sorted distinct request ids.
        rows: ``[R, N]`` original row index of every dense cell (for messages).
    """

    order: np.ndarray
    request_ids: np.ndarray
    rows: np.ndarray

    @classmethod
    def of(cls, request: np.ndarray, k: int, fail: _Fail) -> _RequestGrid:
        """The grid of a ``[rows]`` request id column; every request must have as many
        candidates as most do, and at least ``k``."""
        order = np.argsort(request, kind="stable")
        req_ids, starts, counts = np.unique(request[order], return_index=True,
                                            return_counts=True)
        values, freq = np.unique(counts, return_counts=True)
        n = int(values[np.argmax(freq)])  # the usual number of candidates
        if (counts != n).any():
            odd = _first_bad(counts != n)
            row = int(order[starts[odd]])
            raise fail(
                f"column 'request_id' row {row}: request {req_ids[odd]} has {counts[odd]} "
                f"candidates, but most requests have {n}; every request needs the same number"
            )
        if k > n:
            raise fail(f"{k} slots ({PSCORE_PREFIX}* columns) but only {n} candidates per "
                       "request")
        return cls(order=order, request_ids=req_ids, rows=order.reshape(len(req_ids), n))

    def dense(self, column: np.ndarray) -> np.ndarray:
        """``[rows]`` -> ``[R, N]``."""
        return column[self.order].reshape(self.rows.shape)


def _check_positions(
    positions: np.ndarray, column: np.ndarray, grid: _RequestGrid, k: int, fail: _Fail
) -> None:
    """``[R, N]`` positions are -1 or a slot, and each request fills every slot once."""
    rows, req_ids = grid.rows, grid.request_ids
    bad = (positions < -1) | (positions >= k)
    if bad.any():
        row = int(rows[bad][0])
        raise fail(f"column 'position' row {row}: value {column[row]} is not a "
                   f"valid slot; valid: -1 (not shown) or 0..{k - 1}")
    counts_per_slot = np.zeros((len(req_ids), k), dtype=np.int64)
    rr, cc = np.nonzero(positions >= 0)
    np.add.at(counts_per_slot, (rr, positions[rr, cc]), 1)
    dup = counts_per_slot > 1
    if dup.any():
        req, slot = np.argwhere(dup)[0]
        cand = np.flatnonzero(positions[req] == slot)[1]
        raise fail(f"column 'position' row {int(rows[req, cand])}: request {req_ids[req]} "
                   f"shows two candidates in slot {slot}; each slot holds one candidate")
    empty = counts_per_slot == 0
    if empty.any():
        req, slot = np.argwhere(empty)[0]
        raise fail(f"column 'position' row {int(rows[req, 0])}: request {req_ids[req]} has "
                   f"no candidate in slot {slot}; every slot 0..{k - 1} must be filled")


def _check_pscores(
    pscores: np.ndarray, positions: np.ndarray, pscore_cols: Sequence[str],
    grid: _RequestGrid, fail: _Fail,
) -> None:
    """``[R, N, K]`` propensities: in [0, 1], the logged slot's in (0, 1], at most 1 per
    candidate over the slots, and each slot's summing to 1 over the candidates."""
    rows, req_ids = grid.rows, grid.request_ids
    bad = (pscores < 0) | (pscores > 1)
    if bad.any():
        req, cand, slot = np.argwhere(bad)[0]
        raise fail(f"column '{pscore_cols[slot]}' row {int(rows[req, cand])}: propensity "
                   f"{pscores[req, cand, slot]} is outside [0, 1]")
    shown = positions >= 0
    slot_idx = np.where(shown, positions, 0)
    logged = np.take_along_axis(pscores, slot_idx[..., None], axis=2)[..., 0]
    bad = shown & ~((logged > 0) & (logged <= 1))
    if bad.any():
        req, cand = np.argwhere(bad)[0]
        raise fail(f"column '{PSCORE_PREFIX}{positions[req, cand]}' row "
                   f"{int(rows[req, cand])}: propensity of the logged slot is "
                   f"{logged[req, cand]}; it must be in (0, 1]")
    total = pscores.sum(axis=2)
    bad = total > 1 + 1e-6
    if bad.any():
        req, cand = np.argwhere(bad)[0]
        raise fail(f"columns {PSCORE_PREFIX}*: row {int(rows[req, cand])} puts probability "
                   f"{total[req, cand]:.6f} > 1 on one candidate over all slots")
    col_sums = pscores.sum(axis=1)
    bad = np.abs(col_sums - 1) > 1e-4
    if bad.any():
        req, slot = np.argwhere(bad)[0]
        raise fail(f"column '{pscore_cols[slot]}' rows of request {req_ids[req]} sum to "
                   f"{col_sums[req, slot]:.6f}; each slot's propensities must sum to 1")
