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
impression; it must lie in ``(0, 1]``. No request lists an item twice.

A task's labels are ``binary`` (0 or 1: click, conversion, like), the
default, or ``continuous`` (finite amounts >= 0: watch time, revenue). The
kinds travel in the Parquet metadata under ``fusiontune.label_kinds``, a JSON
object ``{"<task>": "binary" | "continuous"}`` (a task it omits is binary);
for a CSV log pass ``label_kinds`` to :meth:`LoggedTraffic.read` or
:meth:`LoggedTraffic.from_columns`. The examination curve of a
position-based model (probability that slot ``k`` is looked at), when known,
travels in the Parquet metadata under ``fusiontune.examination`` (a JSON list,
one value per slot); a CSV log cannot carry it.

In memory every per-candidate array is dense ``[R, N]`` (``pscores``:
``[R, N, K]``), rows sorted by request id, candidates in their logged order.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
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
    dense_arrays,
    group_requests,
    read_columns,
)
from simulator.files import atomic_write

__all__ = ["BINARY", "CONTINUOUS", "LABEL_KINDS", "LogValidationError", "LoggedTraffic"]

_METADATA_KEY = b"fusiontune.examination"
_KINDS_KEY = b"fusiontune.label_kinds"


@dataclass(frozen=True)
class LoggedTraffic:
    """Dense logged traffic of ``R`` requests x ``N`` candidates, slate size ``K``.

    Args:
        request_ids: ``[R]`` int64, unique (increasing when read from a file).
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
        label_kinds: task -> :data:`BINARY` (labels 0 or 1, the default for a task
            not named) or :data:`CONTINUOUS` (finite labels >= 0); after
            construction it names every task.

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
    pscores: np.ndarray
    labels: Mapping[str, np.ndarray]
    features: Mapping[str, np.ndarray] = field(default_factory=dict)
    examination: np.ndarray | None = None
    prefix_pscores: np.ndarray | None = None
    label_kinds: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
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
            label_kinds=self.label_kinds,
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
            label_kinds=first.label_kinds,
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
        label_kinds: Mapping[str, str] | None = None,
    ) -> LoggedTraffic:
        """Validate long-format columns and build the dense container.

        Args:
            columns: column name -> ``[rows]`` (see the module docstring).
            examination: ``[K]`` examination curve, if known.
            source: what the columns came from (a file name), for messages.
            label_kinds: task -> :data:`BINARY` or :data:`CONTINUOUS`; tasks not
                named are binary.

        Raises:
            LogValidationError: naming ``source``, the column and the first bad row.
        """
        cols = read_columns(columns, source)
        requests = group_requests(cols, source)
        arrays = dense_arrays(cols, requests)
        try:
            return cls(**arrays, label_kinds=dict(label_kinds or {}),
                       examination=None if examination is None
                       else np.asarray(examination, dtype=np.float64))
        except LogValidationError as err:
            raise err.located(source, requests.rows) from None

    # ------------------------------------------------------------------- I/O
    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write as Parquet, atomically (a temporary file renamed into place).

        The examination curve and the label kinds go in the schema metadata.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = Path(path)
        table = pa.table(self.to_columns())
        meta = {_KINDS_KEY: json.dumps(dict(self.label_kinds)).encode()}
        if self.examination is not None:
            meta[_METADATA_KEY] = json.dumps([float(x) for x in self.examination]).encode()
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
        examination, kinds = None, None
        if path.suffix == ".csv":
            table = pacsv.read_csv(path)
        elif path.suffix in (".parquet", ".pq"):
            table = pq.read_table(path)
            meta = table.schema.metadata or {}
            examination = _metadata(meta, _METADATA_KEY, path, list)
            kinds = _metadata(meta, _KINDS_KEY, path, dict)
        else:
            raise LogValidationError(
                f"{path}: unknown log format {path.suffix!r}; valid: .parquet, .pq, .csv"
            )
        columns = {name: table.column(name).to_numpy(zero_copy_only=False)
                   for name in table.column_names}
        return cls.from_columns(
            columns, None if examination is None else np.asarray(examination, np.float64),
            str(path), label_kinds if label_kinds is not None else kinds)

    def with_examination(self, examination: Sequence[float] | np.ndarray) -> LoggedTraffic:
        """The same log with another examination curve (``[K]`` values in ``(0, 1]``)."""
        return dataclasses.replace(self, examination=np.asarray(examination, dtype=np.float64))


def _metadata(meta: Mapping[bytes, bytes], key: bytes, path: Path, kind: type) -> Any:
    """The JSON value of a schema-metadata key (None if absent), of type ``kind``."""
    if key not in meta:
        return None
    try:
        value = json.loads(meta[key])
    except ValueError:
        value = None
    if not isinstance(value, kind):
        raise LogValidationError(
            f"{path}: Parquet metadata {key.decode()!r} must be a JSON "
            f"{'list' if kind is list else 'object'}, got {meta[key][:80]!r}")
    return value
