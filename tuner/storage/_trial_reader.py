"""A read-only copy of one study, read from Optuna's tables with one query a table.

Opening an Optuna :class:`~optuna.storages.RDBStorage` costs a few tenths of a second
before the first row is read: it imports alembic and builds its version manager, whatever
``skip_compatibility_check`` says. A command that only reads a study (``search history``)
needs none of it. :func:`read_snapshot` selects the study's rows from Optuna's tables with
plain SQL (:func:`~tuner.storage._optuna_tables.select` of their columns, not Optuna's ORM
models, whose import alone costs ~0.1 s), through the standard library's sqlite3 for a
SQLite file (:func:`~tuner.storage._rows.open_rows`: no SQLAlchemy import, ~0.14 s more),
and holds them in a :class:`StudySnapshot`, a storage that ``optuna.load_study`` accepts
and that refuses every write.

Each :class:`~optuna.trial.FrozenTrial` is built field by field as RDBStorage builds it:
values and intermediate values from their stored representation (a value and the name of
its type: ``FINITE``, ``INF_POS``, ``INF_NEG``, ``NAN``), state and directions from their
enum member's name, params through their
distribution's JSON, attrs through ``json.loads``, datetimes from naive UTC to naive local
time (SQLite's text form parsed as SQLAlchemy's SQLite dialect parses it), the trial's own
number (which need not be gapless: a run may number its trials
``round * population + member``) and id.
"""

from __future__ import annotations

import copy
import datetime
import json
import math
from collections import defaultdict
from collections.abc import Container, Sequence
from typing import Any

from optuna import distributions as optuna_distributions
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.study._frozen import FrozenStudy
from optuna.trial import FrozenTrial, TrialState

from tuner.storage._migrate import HEAD, stored_revision
from tuner.storage._optuna_tables import OPTUNA_COLUMNS, optuna_revision_is_current, select
from tuner.storage._rows import Rows, open_rows

__all__ = ["ReadOnlyStudyError", "StudySnapshot", "read_snapshot"]


class ReadOnlyStudyError(RuntimeError):
    """A write to a :class:`StudySnapshot`."""


class StudySnapshot(BaseStorage):
    """One study's rows as they were when read; every write raises
    :class:`ReadOnlyStudyError`.

    Args:
        study_id: the study's id in the database it was read from.
        name: its name.
        directions: its directions, by objective.
        user_attrs: its user attrs.
        system_attrs: its system attrs.
        trials: its trials (held by number, then id).
    """

    def __init__(self, study_id: int, name: str, directions: Sequence[StudyDirection],
                 user_attrs: dict[str, Any], system_attrs: dict[str, Any],
                 trials: Sequence[FrozenTrial]) -> None:
        self._study_id = study_id
        self._name = name
        self._directions = list(directions)
        self._user_attrs = user_attrs
        self._system_attrs = system_attrs
        # by number, as Optuna's storages give them (some samplers assume it)
        self._trials = sorted(trials, key=lambda t: (t.number, t._trial_id))
        self._by_id = {t._trial_id: t for t in self._trials}

    def _check_study(self, study_id: int) -> None:
        if study_id != self._study_id:
            raise KeyError(f"no study with id {study_id} in this snapshot of {self._name!r}")

    def _refuse(self, *_: Any, **__: Any) -> Any:
        raise ReadOnlyStudyError(f"study {self._name!r} was opened read-only (a snapshot)")

    create_new_study = delete_study = set_study_user_attr = set_study_system_attr = _refuse
    create_new_trial = set_trial_param = set_trial_state_values = _refuse
    set_trial_intermediate_value = set_trial_user_attr = set_trial_system_attr = _refuse

    def get_study_id_from_name(self, study_name: str) -> int:
        if study_name != self._name:
            raise KeyError(f"no study {study_name!r} in this snapshot of {self._name!r}")
        return self._study_id

    def get_study_name_from_id(self, study_id: int) -> str:
        self._check_study(study_id)
        return self._name

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        self._check_study(study_id)
        return list(self._directions)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        self._check_study(study_id)
        return dict(self._user_attrs)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        self._check_study(study_id)
        return dict(self._system_attrs)

    def get_all_studies(self) -> list[FrozenStudy]:
        return [FrozenStudy(study_name=self._name, direction=None,
                            directions=list(self._directions), user_attrs=dict(self._user_attrs),
                            system_attrs=dict(self._system_attrs), study_id=self._study_id)]

    def get_trial(self, trial_id: int) -> FrozenTrial:
        if trial_id not in self._by_id:
            raise KeyError(f"no trial with id {trial_id} in study {self._name!r}")
        return self._by_id[trial_id]

    def get_all_trials(self, study_id: int, deepcopy: bool = True,
                       states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        self._check_study(study_id)
        trials = [t for t in self._trials if states is None or t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials


def read_snapshot(url: str, study_name: str) -> StudySnapshot | None:
    """One study of the database at ``url``, read-only; None where the database is not at
    the schema heads this code reads (Optuna's :data:`OPTUNA_ALEMBIC_HEAD`, and fusiontune's
    :data:`HEAD` or no fusiontune tables): the caller then opens it the usual way, whose
    checks name the version.

    Raises:
        KeyError: no study of that name.
    """
    with open_rows(url) as rows:
        if not _at_heads(rows):
            return None
        return _read(rows, study_name)


def _at_heads(rows: Rows) -> bool:
    return optuna_revision_is_current(rows) and stored_revision(rows) in (None, HEAD)


def _read(rows: Rows, study_name: str) -> StudySnapshot:
    found = rows.rows(select("studies", "study_id") + " WHERE study_name = :name",
                      {"name": study_name})
    if not found:
        raise KeyError(f"no study {study_name!r}")
    study_id = found[0][0]
    sid = {"sid": study_id}
    directions = [StudyDirection[d] for d, in rows.rows(
        select("study_directions", "direction") + " WHERE study_id = :sid ORDER BY objective",
        sid)]
    trials = rows.rows(select("trials", "trial_id", "number", "state", "datetime_start",
                              "datetime_complete")
                       + " WHERE study_id = :sid ORDER BY trial_id", sid)

    def children(table: str, *columns: str) -> dict[int, list[Any]]:
        """Rows of a per-trial table for the study's trials, by trial id, in row order."""
        query = (select(table, "trial_id", *columns)
                 + f" JOIN trials ON trials.trial_id = {table}.trial_id"
                 + f" WHERE trials.study_id = :sid ORDER BY {table}.{_key(table)}")
        out: dict[int, list[Any]] = defaultdict(list)
        for r in rows.rows(query, sid):
            out[r[0]].append(r[1:])
        return out

    values = children("trial_values", "objective", "value", "value_type")
    params = children("trial_params", "param_name", "param_value", "distribution_json")
    user = children("trial_user_attributes", "key", "value_json")
    system = children("trial_system_attributes", "key", "value_json")
    inter = children("trial_intermediate_values", "step", "intermediate_value",
                     "intermediate_value_type")
    frozen = [_frozen(r, values[r[0]], params[r[0]], user[r[0]], system[r[0]], inter[r[0]])
              for r in trials]
    return StudySnapshot(study_id, study_name, directions,
                         _study_attrs(rows, "study_user_attributes", study_id),
                         _study_attrs(rows, "study_system_attributes", study_id), frozen)


def _key(table: str) -> str:
    """The table's primary key: the first of its columns (see ``OPTUNA_COLUMNS``)."""
    return OPTUNA_COLUMNS[table][0]


def _study_attrs(rows: Rows, table: str, study_id: int) -> dict[str, Any]:
    query = (select(table, "key", "value_json")
             + f" WHERE study_id = :sid ORDER BY {table}.{_key(table)}")
    return {k: json.loads(v) for k, v in rows.rows(query, {"sid": study_id})}


_NON_FINITE = {"INF_POS": math.inf, "INF_NEG": -math.inf, "NAN": math.nan}


def _stored_value(value: float | None, kind: str) -> float:
    """A value from its stored representation, as Optuna's ``stored_repr_to_value`` (and
    ``stored_repr_to_intermediate_value``) read it: infinities and NaN by type alone."""
    if kind in _NON_FINITE:
        return _NON_FINITE[kind]
    if kind != "FINITE" or value is None:
        raise ValueError(f"unreadable stored value {value!r} of type {kind!r} in Optuna's "
                         "tables (types: FINITE with a value, INF_POS, INF_NEG, NAN)")
    return value


def _frozen(row: Any, values: list[Any], params: list[Any], user: list[Any],
            system: list[Any], inter: list[Any]) -> FrozenTrial:
    value_list: list[float] | None = None
    if values:
        value_list = [0.0] * len(values)
        for objective, value, kind in values:
            value_list[objective] = _stored_value(value, kind)
    dists = {name: optuna_distributions.json_to_distribution(js) for name, _, js in params}
    trial_id, number, state, start, complete = row
    return FrozenTrial(
        number=number,
        state=TrialState[state],
        value=None,
        values=value_list,
        datetime_start=_local(start),
        datetime_complete=_local(complete),
        params={name: dists[name].to_external_repr(v) for name, v, _ in params},
        distributions=dists,
        user_attrs={k: json.loads(v) for k, v in user},
        system_attrs={k: json.loads(v) for k, v in system},
        intermediate_values={step: _stored_value(v, kind) for step, v, kind in inter},
        trial_id=trial_id,
    )


def _local(d: datetime.datetime | str | None) -> datetime.datetime | None:
    """Naive UTC as stored -> naive local time, as Optuna's trial model reads it (SQLite
    stores text, ``2026-11-30 12:00:00.250000``; other databases give a datetime)."""
    if isinstance(d, str):
        d = datetime.datetime.fromisoformat(d)
    return None if d is None else d.replace(tzinfo=datetime.UTC).astimezone().replace(tzinfo=None)
