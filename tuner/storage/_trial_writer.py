"""Bulk writer of finished Optuna trials: a whole batch in one transaction, a few INSERTs.

``study.add_trial`` writes one trial per transaction and, inside it, one query per param,
value and user attr (14-34 ms a trial here). :func:`write_trials` writes a batch of
COMPLETE/FAIL/PRUNED trials into Optuna's RDB tables with one multi-row ``INSERT`` per table
(trials, params, values, user attrs, system attrs, intermediate values) inside the caller's
transaction; :func:`add_trials` is the same in a transaction of its own.

What a reader sees through Optuna (``study.trials``, ``get_trials``, ``optuna-dashboard``)
is what ``add_trial`` would have written, field by field:

- numbers: Optuna numbers a trial by the study's trials with a smaller ``trial_id``, counted
  while the study row is locked (``SELECT ... FOR UPDATE``). Here the same lock is taken
  first (on SQLite, whose ``FOR UPDATE`` is a no-op, a no-op ``UPDATE`` of the study row
  takes the database's write lock instead), the study's trials are counted once, and the
  batch gets consecutive numbers in order of its (increasing) trial ids. Any other writer of
  the study, Optuna's own included, waits on that lock, so numbers stay unique and gapless.
- params: ``distribution.to_internal_repr`` and ``distribution_to_json``, checked for
  compatibility with the distribution the study already holds for the name (as Optuna does);
- values: Optuna's stored representation (``inf`` as a value type, not a number);
- attrs: ``json.dumps`` of each value; datetimes as naive UTC, as Optuna's model stores them.

The table models are Optuna's private ``optuna.storages._rdb.models``; :func:`check_schema`
(run by every write) refuses an Optuna whose schema is not the one this
code was written against, with a message that says so, rather than write wrong rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from optuna import distributions as optuna_distributions
from optuna.storages import RDBStorage
from optuna.storages._rdb import models
from optuna.trial import FrozenTrial, TrialState

__all__ = [
    "OPTUNA_ALEMBIC_HEAD",
    "OPTUNA_SCHEMA_VERSION",
    "OptunaSchemaError",
    "add_trials",
    "check_schema",
    "write_trials",
]

OPTUNA_SCHEMA_VERSION = 12
"""``optuna.storages._rdb.models.SCHEMA_VERSION`` this writer was written against."""
OPTUNA_ALEMBIC_HEAD = "v3.2.0.a"
"""Alembic head of Optuna's RDB schema that goes with it."""

# column names of every table written, as in Optuna's schema version 12
_COLUMNS: dict[str, frozenset[str]] = {
    "studies": frozenset({"study_id", "study_name"}),
    "study_directions": frozenset({"study_direction_id", "direction", "study_id", "objective"}),
    "trials": frozenset(
        {"trial_id", "number", "study_id", "state", "datetime_start", "datetime_complete"}
    ),
    "trial_params": frozenset(
        {"param_id", "trial_id", "param_name", "param_value", "distribution_json"}
    ),
    "trial_values": frozenset({"trial_value_id", "trial_id", "objective", "value", "value_type"}),
    "trial_user_attributes": frozenset(
        {"trial_user_attribute_id", "trial_id", "key", "value_json"}
    ),
    "trial_system_attributes": frozenset(
        {"trial_system_attribute_id", "trial_id", "key", "value_json"}
    ),
    "trial_intermediate_values": frozenset(
        {
            "trial_intermediate_value_id",
            "trial_id",
            "step",
            "intermediate_value",
            "intermediate_value_type",
        }
    ),
}

_STUDIES = models.StudyModel.__table__
_DIRECTIONS = models.StudyDirectionModel.__table__
_TRIALS = models.TrialModel.__table__
_PARAMS = models.TrialParamModel.__table__
_VALUES = models.TrialValueModel.__table__
_USER_ATTRS = models.TrialUserAttributeModel.__table__
_SYSTEM_ATTRS = models.TrialSystemAttributeModel.__table__
_INTERMEDIATE = models.TrialIntermediateValueModel.__table__
_FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)


class OptunaSchemaError(RuntimeError):
    """The installed Optuna's RDB schema is not the one :func:`write_trials` writes."""


def check_schema() -> None:
    """Raise :class:`OptunaSchemaError` unless Optuna's table models are schema version
    :data:`OPTUNA_SCHEMA_VERSION` with the columns this writer fills."""
    found = getattr(models, "SCHEMA_VERSION", None)
    problems = []
    if found != OPTUNA_SCHEMA_VERSION:
        problems.append(f"SCHEMA_VERSION is {found}, not {OPTUNA_SCHEMA_VERSION}")
    tables = models.BaseModel.metadata.tables
    for name, columns in _COLUMNS.items():
        have = frozenset(tables[name].columns.keys()) if name in tables else None
        if have is None:
            problems.append(f"table {name!r} is missing")
        elif not columns <= have or (name != "studies" and have != columns):
            problems.append(f"table {name!r} has columns {sorted(have)}, not {sorted(columns)}")
    if problems:
        import optuna

        raise OptunaSchemaError(
            f"fusiontune's bulk trial writer (tuner/_trial_writer.py) was written for Optuna's "
            f"RDB schema version {OPTUNA_SCHEMA_VERSION} (alembic {OPTUNA_ALEMBIC_HEAD}); "
            f"optuna {optuna.__version__} differs: {'; '.join(problems)}. Pin a compatible "
            "optuna or update the writer (and its test tests/tuner/test_trial_writer.py)."
        )


@dataclass(frozen=True)
class Written:
    """Trials written by one call: their ``trial_id`` and ``number``, in input order."""

    trial_ids: tuple[int, ...]
    numbers: tuple[int, ...]


def add_trials(storage: RDBStorage, study_id: int, trials: Sequence[FrozenTrial]) -> Written:
    """:func:`write_trials` in a transaction of its own on ``storage``'s engine."""
    with storage.engine.begin() as conn:
        return write_trials(conn, study_id, trials)


def write_trials(
    conn: sa.Connection, study_id: int, trials: Sequence[FrozenTrial]
) -> Written:
    """Insert finished ``trials`` into study ``study_id``, inside ``conn``'s transaction.

    The caller commits (or rolls back: then nothing of the batch is stored). Each trial is
    validated as ``study.add_trial`` validates it; ``number`` and ``_trial_id`` of the given
    trials are ignored (they are assigned here).

    Returns:
        The trial ids and numbers assigned, in the order of ``trials``.

    Raises:
        ValueError: a trial is not finished, is invalid, has as many values as the study has
            no objectives, or has a distribution incompatible with the study's.
        KeyError: no study ``study_id``.
        OptunaSchemaError: Optuna's table models are not the expected ones.
    """
    check_schema()
    if not trials:
        return Written((), ())
    for t in trials:
        if t.state not in _FINISHED:
            raise ValueError(f"only finished trials are written in bulk, not {t.state.name}")
        t._validate()
    _lock_study(conn, study_id)
    n_objectives = conn.execute(
        sa.select(sa.func.count()).select_from(_DIRECTIONS).where(
            _DIRECTIONS.c.study_id == study_id
        )
    ).scalar_one()
    for t in trials:
        if t.values is not None and len(t.values) != n_objectives:
            raise ValueError(
                f"a trial has {len(t.values)} values; the study has {n_objectives} objectives"
            )
    _check_distributions(conn, study_id, trials)
    base = conn.execute(
        sa.select(sa.func.count()).select_from(_TRIALS).where(_TRIALS.c.study_id == study_id)
    ).scalar_one()
    rows = [
        {
            "number": base + i,
            "study_id": study_id,
            "state": t.state,
            "datetime_start": _utc(t.datetime_start),
            "datetime_complete": _utc(t.datetime_complete),
        }
        for i, t in enumerate(trials)
    ]
    ids = _insert_trials(conn, rows)
    if sorted(ids) != ids:
        raise RuntimeError(f"trial ids of one batch came back out of order: {ids}")
    params, values, user, system, inter = [], [], [], [], []
    for tid, t in zip(ids, trials, strict=True):
        for name, value in t.params.items():
            dist = t.distributions[name]
            params.append(
                {
                    "trial_id": tid,
                    "param_name": name,
                    "param_value": dist.to_internal_repr(value),
                    "distribution_json": optuna_distributions.distribution_to_json(dist),
                }
            )
        if t.values is not None:
            for objective, v in enumerate(t.values):
                stored, kind = models.TrialValueModel.value_to_stored_repr(v)
                values.append(
                    {"trial_id": tid, "objective": objective, "value": stored, "value_type": kind}
                )
        user += [{"trial_id": tid, "key": k, "value_json": json.dumps(v)}
                 for k, v in t.user_attrs.items()]
        system += [{"trial_id": tid, "key": k, "value_json": json.dumps(v)}
                   for k, v in t.system_attrs.items()]
        for step, v in t.intermediate_values.items():
            stored, ikind = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(
                v
            )
            inter.append(
                {
                    "trial_id": tid,
                    "step": step,
                    "intermediate_value": stored,
                    "intermediate_value_type": ikind,
                }
            )
    for table, batch in (
        (_PARAMS, params),
        (_VALUES, values),
        (_USER_ATTRS, user),
        (_SYSTEM_ATTRS, system),
        (_INTERMEDIATE, inter),
    ):
        if batch:
            conn.execute(sa.insert(table), batch)
    return Written(tuple(ids), tuple(base + i for i in range(len(trials))))


def _lock_study(conn: sa.Connection, study_id: int) -> None:
    """Lock the study row as Optuna does before numbering a trial (KeyError if absent)."""
    if conn.dialect.name == "sqlite":
        # SQLite ignores FOR UPDATE; a write takes the database's write lock, held to commit
        stmt: Any = (
            sa.update(_STUDIES)
            .where(_STUDIES.c.study_id == study_id)
            .values(study_name=_STUDIES.c.study_name)
        )
        found = conn.execute(stmt).rowcount
    else:
        stmt = (
            sa.select(_STUDIES.c.study_id)
            .where(_STUDIES.c.study_id == study_id)
            .with_for_update()
        )
        found = len(conn.execute(stmt).all())
    if not found:
        raise KeyError(f"no study with study_id {study_id}")


def _check_distributions(
    conn: sa.Connection, study_id: int, trials: Sequence[FrozenTrial]
) -> None:
    """Every param's distribution must be compatible with the one the study holds for its
    name (one stored row per name, as Optuna checks), and within the batch."""
    names = sorted({n for t in trials for n in t.distributions})
    reference: dict[str, optuna_distributions.BaseDistribution] = {}
    if names:
        picks = [
            sa.select(_PARAMS.c.param_name, _PARAMS.c.distribution_json)
            .join(_TRIALS, _TRIALS.c.trial_id == _PARAMS.c.trial_id)
            .where((_TRIALS.c.study_id == study_id) & (_PARAMS.c.param_name == name))
            .limit(1)
            .subquery()
            .select()
            for name in names
        ]
        stmt = picks[0] if len(picks) == 1 else sa.union_all(*picks)
        for name, dist_json in conn.execute(stmt):
            reference[name] = optuna_distributions.json_to_distribution(dist_json)
    for t in trials:
        for name, dist in t.distributions.items():
            ref = reference.setdefault(name, dist)
            optuna_distributions.check_distribution_compatibility(ref, dist)


def _insert_trials(conn: sa.Connection, rows: list[dict[str, Any]]) -> list[int]:
    """Insert trial rows; their new ids in the order of ``rows``."""
    if conn.dialect.insert_executemany_returning_sort_by_parameter_order:
        stmt = sa.insert(_TRIALS).returning(_TRIALS.c.trial_id, sort_by_parameter_order=True)
        return [int(i) for i in conn.execute(stmt, rows).scalars()]
    out = []
    for row in rows:  # no ordered multi-row RETURNING on this backend: one statement each
        key = conn.execute(sa.insert(_TRIALS).values(row)).inserted_primary_key
        assert key is not None
        out.append(int(key[0]))
    return out


def _utc(d: datetime | None) -> datetime | None:
    """Naive UTC, as Optuna's ``TrialModel`` stores a (naive local or aware) datetime."""
    return None if d is None else d.astimezone(UTC).replace(tzinfo=None)
