"""Long-format columns -> the padded arrays of a :class:`~simulator.logs.LoggedTraffic`.

Three steps: :func:`read_columns` checks names, lengths and dtypes and makes
the key columns integers; :func:`group_requests` sorts rows by request (a
request may have any number of rows) and checks that each has one user;
:func:`dense_arrays` builds the ``[R, N_max]`` arrays, a request's candidates
first and padding after (``valid`` False, item ``-1``, never shown, no labels,
propensities 0). The value checks are the container's own
(:mod:`simulator._log_checks`), run when it is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator._log_checks import LogValidationError

__all__ = ["Columns", "Requests", "dense_arrays", "group_requests", "read_columns"]

LABEL_PREFIX = "label_"
FEATURE_PREFIX = "feature_"
PSCORE_PREFIX = "pscore_"
SHOWN_PSCORE = "pscore"
PREFIX_PSCORE = "prefix_pscore"
KEY_COLUMNS = ("request_id", "user_id", "item_id", "position")


@dataclass(frozen=True)
class Columns:
    """Checked long-format columns: ``numeric`` name -> ``[rows]``, and which are which.

    ``pscores`` lists the ``pscore_<k>`` columns (empty for a log with only ``pscore``).
    """

    numeric: dict[str, np.ndarray]
    pscores: list[str]
    labels: list[str]


@dataclass(frozen=True)
class Requests:
    """Rows grouped by request.

    Args:
        ids: ``[R]`` request ids, increasing.
        rows: ``[R, N_max]`` file row of candidate ``n`` of request ``r``; ``-1`` on padding.
        counts: ``[R]`` candidates of each request.
        in_order: the rows were already sorted by request (``rows`` is then the row
            order itself, padded).
    """

    ids: np.ndarray
    rows: np.ndarray
    counts: np.ndarray
    in_order: bool = False

    @property
    def ragged(self) -> bool:
        return bool((self.counts != self.rows.shape[1]).any())


def read_columns(columns: Mapping[str, np.ndarray], source: str) -> Columns:
    """Names, equal lengths and numeric dtypes; key columns become int64."""
    def fail(msg: str) -> LogValidationError:
        return LogValidationError(f"{source}: {msg}")

    missing = [c for c in KEY_COLUMNS if c not in columns]
    if missing:
        raise fail(f"missing column(s) {missing}; a log needs {list(KEY_COLUMNS)}, "
                   f"{PSCORE_PREFIX}<slot> or {SHOWN_PSCORE}, and {LABEL_PREFIX}<task> columns")
    pscore_cols = sorted(
        (c for c in columns if c.startswith(PSCORE_PREFIX)),
        key=lambda c: int(c[len(PSCORE_PREFIX):]) if c[len(PSCORE_PREFIX):].isdigit() else -1,
    )
    if not pscore_cols and SHOWN_PSCORE not in columns:
        raise fail(f"missing propensities: a log needs the columns {PSCORE_PREFIX}0.."
                   f"{PSCORE_PREFIX}<K-1> (every candidate's logging propensity of every slot) "
                   f"or the column {SHOWN_PSCORE!r} (the propensity of each shown row)")
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
        numeric[name] = arr.astype(np.int64, copy=False)
    optional = [c for c in (PREFIX_PSCORE, SHOWN_PSCORE) if c in columns]
    for name in [*pscore_cols, *label_cols, *optional]:
        numeric[name] = numeric[name].astype(np.float64, copy=False)
    return Columns(numeric, pscore_cols, label_cols)


def group_requests(cols: Columns, source: str) -> Requests:
    """Rows sorted by request (stably: candidates keep their order); one user a request."""
    request = cols.numeric["request_id"]
    in_order = bool((request[1:] >= request[:-1]).all())  # a file's rows are: no sort
    order = np.arange(len(request)) if in_order else np.argsort(request, kind="stable")
    ordered = request if in_order else request[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    ids = ordered[starts]
    counts = np.diff(np.append(starts, len(ordered)))
    n = int(counts.max())
    if (counts == n).all():
        rows = order.reshape(len(ids), n)
    else:
        col = np.arange(n)[None, :]
        rows = np.where(col < counts[:, None],
                        order[np.minimum(starts[:, None] + col, len(order) - 1)], -1)
    user = cols.numeric["user_id"][np.where(rows >= 0, rows, rows[:, :1])]
    bad = user != user[:, :1]
    if bad.any():
        raise LogValidationError(f"{source}: column 'user_id' row {int(rows[bad][0])}: a "
                                 "request has more than one user")
    return Requests(ids.astype(np.int64), rows, counts.astype(np.int64), in_order)


def dense_arrays(cols: Columns, requests: Requests,
                 examination: np.ndarray | None = None) -> dict[str, Any]:
    """The container's arrays (keyword arguments of ``LoggedTraffic`` but the examination).

    A ragged log's padding is filled in (item ``-1``, position ``-1``, everything else 0).
    The page size ``K`` of a log with only ``pscore`` is the examination curve's length
    when one is given, else one more than the largest position.
    """
    numeric = cols.numeric
    ragged = requests.ragged
    valid = requests.rows >= 0
    rows = np.where(valid, requests.rows, requests.rows[:, :1])
    shape = rows.shape

    def take(name: str, fill: float) -> np.ndarray:
        values = numeric[name]
        if requests.in_order and not ragged:  # rows in request order: a reshape, no gather
            return values.reshape(shape)
        if requests.in_order:
            out = np.full(shape, fill, dtype=values.dtype)
            out[valid] = values
            return out
        values = values[rows]
        return np.where(valid, values, np.asarray(fill, dtype=values.dtype)) if ragged else values

    positions = take("position", -1)
    shown = positions >= 0
    prefix = None
    if PREFIX_PSCORE in numeric:  # ignored where not shown
        prefix = np.where(shown, numeric[PREFIX_PSCORE][rows], 0.0)
    pscores = None
    if cols.pscores:
        pscores = np.stack([take(c, 0.0) for c in cols.pscores], axis=-1)
    shown_pscores = None
    if SHOWN_PSCORE in numeric:  # null (nan) or anything where not shown: 0
        shown_pscores = np.where(shown, numeric[SHOWN_PSCORE][rows], 0.0)
    slots = None
    if pscores is None:
        slots = (len(examination) if examination is not None
                 else int(positions.max(initial=-1)) + 1)
    return {
        "request_ids": requests.ids,
        "user_ids": numeric["user_id"][rows[:, 0]],
        "item_ids": take("item_id", -1),
        "positions": positions,
        "pscores": pscores,
        "labels": {c[len(LABEL_PREFIX):]: take(c, 0.0) for c in cols.labels},
        "features": {c[len(FEATURE_PREFIX):]: take(c, 0)
                     for c in numeric if c.startswith(FEATURE_PREFIX)},
        "prefix_pscores": prefix,
        "valid": valid if ragged else None,
        "shown_pscores": shown_pscores,
        "slots": max(slots, 1) if slots is not None else None,
    }
