"""Long-format columns -> the dense arrays of a :class:`~simulator.logs.LoggedTraffic`.

Three steps: :func:`read_columns` checks names, lengths and dtypes and makes
the key columns integers; :func:`group_requests` sorts rows by request and
checks that every request has as many candidates and one user;
:func:`dense_arrays` builds the ``[R, N]`` arrays. The value checks are the
container's own (:mod:`simulator._log_checks`), run when it is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator._log_checks import LogValidationError

LABEL_PREFIX = "label_"
FEATURE_PREFIX = "feature_"
PSCORE_PREFIX = "pscore_"
PREFIX_PSCORE = "prefix_pscore"
KEY_COLUMNS = ("request_id", "user_id", "item_id", "position")


@dataclass(frozen=True)
class Columns:
    """Checked long-format columns: ``numeric`` name -> ``[rows]``, and which are which."""

    numeric: dict[str, np.ndarray]
    pscores: list[str]
    labels: list[str]


@dataclass(frozen=True)
class Requests:
    """Rows grouped by request; ``rows[r, n]``: file row of candidate ``n`` of request ``r``."""

    ids: np.ndarray
    rows: np.ndarray


def read_columns(columns: Mapping[str, np.ndarray], source: str) -> Columns:
    """Names, equal lengths and numeric dtypes; key columns become int64."""
    def fail(msg: str) -> LogValidationError:
        return LogValidationError(f"{source}: {msg}")

    missing = [c for c in KEY_COLUMNS if c not in columns]
    if missing:
        raise fail(f"missing column(s) {missing}; a log needs {list(KEY_COLUMNS)}, "
                   f"{PSCORE_PREFIX}<slot>, and {LABEL_PREFIX}<task> columns")
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
    for name in KEY_COLUMNS:
        arr = numeric[name]
        if arr.dtype.kind == "f":
            bad = ~np.isfinite(arr) | (arr != np.round(arr))
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise fail(f"column {name!r} row {row}: must be an integer, got {arr[row]}")
        numeric[name] = arr.astype(np.int64)
    floats = [*pscore_cols, *label_cols, *([PREFIX_PSCORE] if PREFIX_PSCORE in columns else [])]
    for name in floats:
        numeric[name] = numeric[name].astype(np.float64)
    return Columns(numeric, pscore_cols, label_cols)


def group_requests(cols: Columns, source: str) -> Requests:
    """Rows sorted by request (stably: candidates keep their order); equal counts, one user."""
    request = cols.numeric["request_id"]
    order = np.argsort(request, kind="stable")
    ids, starts, counts = np.unique(request[order], return_index=True, return_counts=True)
    values, freq = np.unique(counts, return_counts=True)
    n = int(values[np.argmax(freq)])  # the usual number of candidates
    if (counts != n).any():
        odd = int(np.flatnonzero(counts != n)[0])
        raise LogValidationError(
            f"{source}: column 'request_id' row {int(order[starts[odd]])}: request {ids[odd]} "
            f"has {counts[odd]} candidates, but most requests have {n}; every request needs "
            "the same number")
    rows = order.reshape(len(ids), n)
    user = cols.numeric["user_id"][rows]
    bad = user != user[:, :1]
    if bad.any():
        raise LogValidationError(f"{source}: column 'user_id' row {int(rows[bad][0])}: a "
                                 "request has more than one user")
    return Requests(ids.astype(np.int64), rows)


def dense_arrays(cols: Columns, requests: Requests) -> dict[str, Any]:
    """The container's arrays (keyword arguments of ``LoggedTraffic`` but the examination)."""
    rows, numeric = requests.rows, cols.numeric
    positions = numeric["position"][rows]
    prefix = None
    if PREFIX_PSCORE in numeric:  # ignored where not shown
        prefix = np.where(positions >= 0, numeric[PREFIX_PSCORE][rows], 0.0)
    return {
        "request_ids": requests.ids,
        "user_ids": numeric["user_id"][rows[:, 0]],
        "item_ids": numeric["item_id"][rows],
        "positions": positions,
        "pscores": np.stack([numeric[c][rows] for c in cols.pscores], axis=-1),
        "labels": {c[len(LABEL_PREFIX):]: numeric[c][rows] for c in cols.labels},
        "features": {c[len(FEATURE_PREFIX):]: numeric[c][rows]
                     for c in numeric if c.startswith(FEATURE_PREFIX)},
        "prefix_pscores": prefix,
    }
