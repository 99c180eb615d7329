"""The checks every :class:`~simulator.logs.LoggedTraffic` passes, written once.

The container runs :func:`check_traffic` on construction, so a log built in
memory (a world, a test) and one read from a file obey the same rules. A
fault in a cell names the request and the row of the long table (the order
of ``to_columns``); :meth:`LogValidationError.located` renames that row to the
row of the file the log was read from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from simulator.logs import LoggedTraffic

__all__ = ["BINARY", "CONTINUOUS", "LABEL_KINDS", "LogValidationError", "check_examination",
           "check_traffic"]

BINARY = "binary"
"""A task whose labels are 0 or 1 (click, conversion, like)."""
CONTINUOUS = "continuous"
"""A task whose labels are finite numbers >= 0 (watch time, revenue)."""
LABEL_KINDS = (BINARY, CONTINUOUS)

_ROW = "\x00row\x00"  # where a cell's row goes in a message template


class LogValidationError(ValueError):
    """A logged-traffic table is malformed; the message names column, request and row."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self._template: str | None = None
        self._cell: tuple[int, int] = (0, 0)

    @classmethod
    def at(cls, template: str, cell: tuple[int, int], row: int) -> LogValidationError:
        """A fault in cell ``(request index, candidate)``, row ``row`` of the long table;
        ``template`` holds :data:`_ROW`."""
        r, c = (int(x) for x in cell)
        err = cls(template.replace(_ROW, str(int(row))))
        err._template, err._cell = template, (r, c)
        return err

    def located(self, source: str, rows: np.ndarray) -> LogValidationError:
        """The same fault, prefixed by ``source`` and with the row ``rows[cell]`` of its file."""
        text = str(self) if self._template is None else self._template.replace(
            _ROW, str(int(rows[self._cell])))
        return LogValidationError(f"{source}: {text}")


def check_examination(examination: np.ndarray, slate_size: int) -> None:
    """Raise unless ``examination`` is ``[K]`` probabilities in ``(0, 1]``."""
    if examination.shape != (slate_size,) or not ((examination > 0) & (examination <= 1)).all():
        raise LogValidationError(
            f"examination curve must be {slate_size} values in (0, 1], one per slot, "
            f"got {examination.tolist()}")


def check_traffic(traffic: LoggedTraffic) -> None:
    """Shapes first, then values; raises :class:`LogValidationError` on the first fault."""
    _check_shapes(traffic)
    _check_padding(traffic)
    _check_slots(traffic)
    _check_items(traffic)
    _check_pscores(traffic)
    _check_labels(traffic)
    if traffic.examination is not None:
        check_examination(traffic.examination, traffic.slate_size)
    if traffic.prefix_pscores is not None:
        pp = np.where(traffic.shown, traffic.prefix_pscores, 1.0)
        if (cell := _first(~((pp > 0) & (pp <= 1)))) is not None:
            raise _at(traffic, f"column 'prefix_pscore' row {_ROW}: probability {pp[cell]} of "
                      "a logged prefix must be in (0, 1]", cell)


def _first(bad: np.ndarray) -> tuple[int, int] | None:
    """The first True cell of ``[R, N]`` ``bad`` (request-major), or None."""
    if not bad.any():
        return None
    r, c = np.argwhere(bad)[0]
    return int(r), int(c)


def _at(t: LoggedTraffic, template: str, cell: tuple[int, int]) -> LogValidationError:
    """The fault of ``cell``, located at its row of :meth:`LoggedTraffic.to_columns`."""
    r, c = cell
    # ragged: the rows of the requests before, then the candidate's own
    row = r * t.n_candidates + c if t.valid is None else int(t.valid[:r].sum()) + c
    return LogValidationError.at(template, cell, row)


def _check_layout(t: LoggedTraffic) -> None:
    """Which propensities the log has, of which shapes; the candidate mask's shape."""
    if t.item_ids.ndim != 2 or t.item_ids.shape[1] < 1:
        raise LogValidationError(f"item_ids must have shape [R, N] with N >= 1, got "
                                 f"{t.item_ids.shape}")
    r, n = t.item_ids.shape
    if t.pscores is None and t.shown_pscores is None:
        raise LogValidationError(
            "a log needs propensities: pscores [R, N, K] (columns pscore_0..pscore_<K-1>) or "
            "shown_pscores [R, N] (column 'pscore', the propensity of each shown row)")
    if t.pscores is not None and (t.pscores.ndim != 3 or t.pscores.shape[:2] != (r, n)
                                  or t.pscores.shape[2] < 1):
        raise LogValidationError(
            f"pscores must have shape [R, N, K] = [{r}, {n}, K], got {t.pscores.shape}")
    if t.pscores is None and not (isinstance(t.slots, int | np.integer) and t.slots >= 1):
        raise LogValidationError(f"a log without pscores needs its page size: slots must be "
                                 f"an integer >= 1, got {t.slots!r}")
    if t.pscores is not None and t.slots is not None and t.slots != t.pscores.shape[2]:
        raise LogValidationError(f"slots {t.slots} disagrees with the {t.pscores.shape[2]} "
                                 "slots of pscores")
    for name, opt in [("shown_pscores", t.shown_pscores), ("valid", t.valid)]:
        if opt is not None and opt.shape != (r, n):
            raise LogValidationError(f"{name} must have shape [{r}, {n}], got {opt.shape}")
    if t.valid is not None and t.valid.dtype != np.bool_:
        raise LogValidationError(f"valid must be a bool array, got dtype {t.valid.dtype}")


def _check_shapes(t: LoggedTraffic) -> None:
    _check_layout(t)
    r, n = t.item_ids.shape
    for name, arr in [("request_ids", t.request_ids), ("user_ids", t.user_ids)]:
        if arr.shape != (r,):
            raise LogValidationError(f"{name} must have shape [{r}], got {arr.shape}")
    for name, arr in [("positions", t.positions), *t.labels.items(), *t.features.items()]:
        if arr.shape != (r, n):
            raise LogValidationError(f"{name} must have shape [{r}, {n}], got {arr.shape}")
    if t.prefix_pscores is not None and t.prefix_pscores.shape != (r, n):
        raise LogValidationError(
            f"prefix_pscores must have shape [{r}, {n}], got {t.prefix_pscores.shape}")
    if not t.labels:
        raise LogValidationError("a log needs at least one label_<task> column")
    unknown = sorted(set(t.label_kinds) - set(t.labels))
    if unknown:
        raise LogValidationError(f"label kinds of unknown task(s) {unknown}; the log's tasks: "
                                 f"{list(t.labels)}")
    bad_kinds = {task: k for task, k in t.label_kinds.items() if k not in LABEL_KINDS}
    if bad_kinds:
        raise LogValidationError(f"unknown label kind(s) {bad_kinds}; valid: {list(LABEL_KINDS)}")
    ids = np.sort(t.request_ids)
    if (ids[1:] == ids[:-1]).any():
        raise LogValidationError(f"request_ids must be unique; request "
                                 f"{ids[1:][ids[1:] == ids[:-1]][0]} appears twice")


def _check_padding(t: LoggedTraffic) -> None:
    """A request has >= 1 candidate, first; padding after, never shown, without labels."""
    if t.valid is None:
        return
    valid = t.valid
    empty = ~valid.any(axis=1)
    if empty.any():
        raise LogValidationError(f"request {t.request_ids[np.argmax(empty)]} has no candidates "
                                 "(valid is False on its every row); a request needs one")
    if (cell := _first(valid[:, 1:] & ~valid[:, :-1])) is not None:
        raise LogValidationError(
            f"valid: request {t.request_ids[cell[0]]} has a candidate (index {cell[1] + 1}) "
            "after padding; a request's candidates come first, its padding after")
    pad = ~valid
    checks = [("positions", t.positions != -1), *[
        (f"labels[{task!r}]", lab != 0) for task, lab in t.labels.items()]]
    if t.pscores is not None:
        checks.append(("pscores", (t.pscores != 0).any(axis=2)))
    for name, opt in [("shown_pscores", t.shown_pscores), ("prefix_pscores", t.prefix_pscores)]:
        if opt is not None:
            checks.append((name, opt != 0))
    for name, nonzero in checks:
        if (cell := _first(pad & nonzero)) is not None:
            want = "-1 (not shown)" if name == "positions" else "0"
            raise LogValidationError(
                f"{name}: padding (index {cell[1]}) of request {t.request_ids[cell[0]]} must "
                f"be {want}; padding is no candidate")


def _check_slots(t: LoggedTraffic) -> None:
    """Positions are -1 or a slot, and a slot holds at most one candidate per request.

    A request may show fewer slots than the page has, and not necessarily the first ones
    (the user left, or a slot was not recorded): the estimators take each request's
    shown slots as the ones its user could examine.
    """
    k, positions = t.slate_size, t.positions
    if (cell := _first((positions < -1) | (positions >= k))) is not None:
        raise _at(t, f"column 'position' row {_ROW}: value {positions[cell]} is not a valid "
                  f"slot; valid: -1 (not shown) or 0..{k - 1}", cell)
    shown = positions >= 0
    per_slot = np.zeros((t.n_requests, k), dtype=np.int64)
    rr, cc = np.nonzero(shown)
    np.add.at(per_slot, (rr, positions[rr, cc]), 1)
    if (per_slot > 1).any():
        req, slot = np.argwhere(per_slot > 1)[0]
        second = int(np.flatnonzero(positions[req] == slot)[1])
        raise _at(t, f"column 'position' row {_ROW}: request {t.request_ids[req]} shows two "
                  f"candidates in slot {slot}; each slot holds one candidate", (req, second))


def _check_items(t: LoggedTraffic) -> None:
    """No request lists an item twice (its scores and labels would be ambiguous)."""
    ids = t.item_ids
    if t.valid is not None:  # padding never repeats: distinct numbers below every item
        ids = np.where(t.valid, ids, np.iinfo(np.int64).min + np.arange(ids.shape[1])[None])
    order = np.argsort(ids, axis=1, kind="stable")
    items = np.take_along_axis(ids, order, axis=1)
    repeat = items[:, 1:] == items[:, :-1]
    if repeat.any():
        req, j = np.argwhere(repeat)[0]
        cell = (int(req), int(order[req, j + 1]))
        raise _at(t, f"column 'item_id' row {_ROW}: request {t.request_ids[req]} lists item "
                  f"{t.item_ids[cell]} twice", cell)


def _check_pscores(t: LoggedTraffic) -> None:
    """Propensities: those of a shown row in (0, 1]; slot ones a distribution per shown slot.

    With ``pscores``, every slot's column is in [0, 1], no candidate has more than 1 over
    all slots, and a slot the request shows sums to 1 over its candidates (one the
    request does not show, at most 1: the estimators ignore it). With ``shown_pscores``,
    each shown row's is in (0, 1], 0 elsewhere, and equal to its slot's ``pscores`` when
    the log has both.
    """
    shown = t.shown
    if t.shown_pscores is not None:
        sp = t.shown_pscores
        if (cell := _first(shown & ~((sp > 0) & (sp <= 1)))) is not None:
            raise _at(t, f"column 'pscore' row {_ROW}: propensity {sp[cell]} of a shown row "
                      f"(request {t.request_ids[cell[0]]}, slot {t.positions[cell]}) must be "
                      "in (0, 1]", cell)
        if (cell := _first(~shown & (sp != 0))) is not None:
            raise _at(t, f"column 'pscore' row {_ROW}: shown_pscores must be 0 where not "
                      f"shown, got {sp[cell]}", cell)
    if t.pscores is None:
        return
    ps = t.pscores
    in_range = (ps >= 0) & (ps <= 1)  # False on nan and inf too
    for slot in range(0 if in_range.all() else t.slate_size):  # locate the fault
        p = ps[:, :, slot]
        if (cell := _first(~np.isfinite(p))) is not None:
            raise _at(t, f"column 'pscore_{slot}' row {_ROW}: value {p[cell]} is not finite "
                      "(labels and propensities must be numbers)", cell)
        if (cell := _first((p < 0) | (p > 1))) is not None:
            raise _at(t, f"column 'pscore_{slot}' row {_ROW}: propensity {p[cell]} is outside "
                      "[0, 1]", cell)
    logged = np.take_along_axis(ps, np.where(shown, t.positions, 0)[..., None], axis=2)[..., 0]
    if (cell := _first(shown & ~((logged > 0) & (logged <= 1)))) is not None:
        raise _at(t, f"column 'pscore_{t.positions[cell]}' row {_ROW}: propensity of the "
                  f"logged slot is {logged[cell]}; it must be in (0, 1]", cell)
    if t.shown_pscores is not None:
        off = shown & ~np.isclose(t.shown_pscores, logged, rtol=1e-6, atol=1e-9)
        if (cell := _first(off)) is not None:
            raise _at(t, f"column 'pscore' row {_ROW}: propensity {t.shown_pscores[cell]} "
                      f"disagrees with pscore_{t.positions[cell]} = {logged[cell]} of the "
                      "slot the row was shown in; a log with both must give the same", cell)
    total = ps.sum(axis=2)
    if (cell := _first(total > 1 + 1e-6)) is not None:
        raise _at(t, f"columns pscore_*: row {_ROW} puts probability {total[cell]:.6f} > 1 on "
                  "one candidate over all slots", cell)
    col_sums = ps.sum(axis=1)
    bad = np.abs(col_sums - 1) > 1e-4
    if t.valid is not None or not t.slot_shown.all():  # a slot not shown: at most 1
        bad = np.where(t.slot_shown, bad, col_sums > 1 + 1e-4)
    if bad.any():
        req, slot = np.argwhere(bad)[0]
        raise LogValidationError(
            f"column 'pscore_{slot}' rows of request {t.request_ids[req]} sum to "
            f"{col_sums[req, slot]:.6f}; each shown slot's propensities must sum to 1 over "
            "the request's candidates (a slot not shown: at most 1)")


def _check_labels(t: LoggedTraffic) -> None:
    """Finite; 0 where not shown; 0/1 for a binary task, >= 0 for a continuous one."""
    shown = t.shown
    for task, lab in t.labels.items():
        col = f"label_{task}"
        if (cell := _first(~np.isfinite(lab))) is not None:
            raise _at(t, f"column '{col}' row {_ROW}: value {lab[cell]} is not finite "
                      "(labels and propensities must be numbers)", cell)
        if (cell := _first(~shown & (lab != 0))) is not None:
            raise _at(t, f"column '{col}' row {_ROW}: a candidate that was not shown "
                      "(position -1) has a non-zero label", cell)
        binary = t.label_kinds.get(task, BINARY) == BINARY
        if (cell := _first((lab != 0) & (lab != 1) if binary else lab < 0)) is not None:
            request = t.request_ids[cell[0]]
            rule = ("binary (labels 0 or 1)" if binary else "continuous (labels >= 0)")
            hint = f"; declare it {CONTINUOUS!r} if its labels are amounts" if binary else ""
            raise _at(t, f"task {task!r} is {rule} but request {request} row {_ROW} has label "
                      f"{lab[cell]:g}{hint}", cell)


def full_kinds(tasks: Mapping[str, object], declared: Mapping[str, str]) -> dict[str, str]:
    """Every task's label kind: the declared one, else :data:`BINARY`."""
    return {task: str(declared.get(task, BINARY)) for task in tasks}
