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

Numbers can instead be given by the caller (``numbers=``, e.g. ``round * population +
member``, so a run numbers its trials the same however many workers wrote them); a number
already taken in the study is refused, whoever took it.

The table models are Optuna's private ``optuna.storages._rdb.models``; :func:`check_schema`
says whether the installed Optuna's schema is the one this code was written against
(version :data:`OPTUNA_SCHEMA_VERSION`, tested with optuna 4.0-5.0). When it is not,
:func:`add_trials` falls back to Optuna's public storage API (``create_new_trial`` with a
template trial, what ``study.add_trial`` does), one trial per transaction, with a one-time
:class:`OptunaSchemaWarning`: slower, but correct. That fallback numbers trials by arrival
(``numbers=`` is ignored) and a batch is no longer all-or-nothing: a failure leaves the
trials before it written. :func:`write_trials`, which writes inside the caller's
transaction, has no fallback: it raises :class:`OptunaSchemaError` (see
:func:`bulk_supported`).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from optuna import distributions as optuna_distributions
from optuna.storages import RDBStorage
from optuna.storages._rdb import models
from optuna.trial import FrozenTrial, TrialState

from tuner.storage._optuna_tables import (
    OPTUNA_ALEMBIC_HEAD,
    OPTUNA_COLUMNS,
    OPTUNA_SCHEMA_VERSION,
)

__all__ = [
    "TrialNumberTaken",
    "OPTUNA_ALEMBIC_HEAD",
    "OPTUNA_SCHEMA_VERSION",
    "OptunaSchemaError",
    "OptunaSchemaWarning",
    "Written",
    "add_trials",
    "bulk_supported",
    "check_schema",
    "write_trials",
]

# the tables written (their columns: OPTUNA_COLUMNS, checked against Optuna's models)
_WRITTEN = ("studies", "study_directions", "trials", "trial_params", "trial_values",
            "trial_user_attributes", "trial_system_attributes", "trial_intermediate_values")
_COLUMNS: dict[str, frozenset[str]] = {name: frozenset(OPTUNA_COLUMNS[name]) for name in _WRITTEN}

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


class OptunaSchemaWarning(UserWarning):
    """The bulk writer is off (Optuna's schema differs); trials go one at a time."""


_warned = False  # the fallback's warning is given once per process


def bulk_supported() -> bool:
    """Whether the installed Optuna's RDB schema is the one the bulk writer writes."""
    return not _schema_problems()


def check_schema() -> None:
    """Raise :class:`OptunaSchemaError` unless Optuna's table models are schema version
    :data:`OPTUNA_SCHEMA_VERSION` with the columns this writer fills."""
    problems = _schema_problems()
    if problems:
        import optuna

        raise OptunaSchemaError(
            f"fusiontune's bulk trial writer (tuner/storage/_trial_writer.py) was written for "
            f"Optuna's RDB schema version {OPTUNA_SCHEMA_VERSION} (alembic "
            f"{OPTUNA_ALEMBIC_HEAD}); optuna {optuna.__version__} differs: "
            f"{'; '.join(problems)}. Pin a compatible optuna or update the writer (and its "
            "test tests/tuner/test_trial_writer.py)."
        )


def _schema_problems() -> list[str]:
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
    return problems


@dataclass(frozen=True)
class Written:
    """Trials written by one call: their ``trial_id`` and ``number``, in input order."""

    trial_ids: tuple[int, ...]
    numbers: tuple[int, ...]


def add_trials(
    storage: RDBStorage,
    study_id: int,
    trials: Sequence[FrozenTrial],
    numbers: Sequence[int] | None = None,
) -> Written:
    """:func:`write_trials` in a transaction of its own on ``storage``'s engine.

    If the installed Optuna's schema is not the one the bulk writer writes, the trials are
    added through Optuna's public storage API instead, one transaction each, numbered by
    arrival (``numbers`` is then ignored), with a one-time :class:`OptunaSchemaWarning`.
    """
    if not bulk_supported():
        return add_trials_one_by_one(storage, study_id, trials)
    with storage.engine.begin() as conn:
        return write_trials(conn, study_id, trials, numbers)


def add_trials_one_by_one(
    storage: RDBStorage, study_id: int, trials: Sequence[FrozenTrial]
) -> Written:
    """Add ``trials`` through Optuna's public storage API, what ``study.add_trial`` does.

    The fallback of :func:`add_trials`: one transaction per trial, numbers by arrival, and a
    failure leaves the trials before it written. Warns once per process.
    """
    global _warned
    if not _warned:
        _warned = True
        import optuna

        warnings.warn(
            f"optuna {optuna.__version__}'s RDB schema is not version "
            f"{OPTUNA_SCHEMA_VERSION} ({'; '.join(_schema_problems())}); fusiontune writes "
            "trials one at a time through Optuna's API (slower; numbers by arrival)",
            OptunaSchemaWarning,
            stacklevel=3,
        )
    for t in trials:
        if t.state not in _FINISHED:
            raise ValueError(f"only finished trials are written in bulk, not {t.state.name}")
    ids, numbers = [], []
    for t in trials:
        t._validate()  # as study.add_trial does before create_new_trial
        tid = storage.create_new_trial(study_id, template_trial=t)
        ids.append(tid)
        numbers.append(storage.get_trial_number_from_id(tid))
    return Written(tuple(ids), tuple(numbers))


def write_trials(
    conn: sa.Connection,
    study_id: int,
    trials: Sequence[FrozenTrial],
    numbers: Sequence[int] | None = None,
) -> Written:
    """Insert finished ``trials`` into study ``study_id``, inside ``conn``'s transaction.

    The caller commits (or rolls back: then nothing of the batch is stored). Each trial is
    validated as ``study.add_trial`` validates it; ``number`` and ``_trial_id`` of the given
    trials are ignored (they are assigned here).

    Args:
        conn: a connection whose transaction the rows go into.
        study_id: Optuna's id of the study.
        trials: finished trials.
        numbers: the trials' numbers, one each, e.g. ``round * population + member``;
            default: the next free ones, as Optuna numbers (the study's trial count on).

    Returns:
        The trial ids and numbers assigned, in the order of ``trials``.

    Raises:
        ValueError: a trial is not finished, is invalid, has as many values as the study has
            no objectives, or has a distribution incompatible with the study's; a number is
            negative, repeated, or already taken in the study.
        KeyError: no study ``study_id``.
        OptunaSchemaError: Optuna's table models are not the expected ones.
    """
    check_schema()
    _check_batch(trials, numbers)
    if not trials:
        return Written((), ())
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
    chosen = _numbers(conn, study_id, len(trials), numbers)
    rows = [
        {
            "number": chosen[i],
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
    return Written(tuple(ids), tuple(chosen))


def _check_batch(trials: Sequence[FrozenTrial], numbers: Sequence[int] | None) -> None:
    """Refuse unfinished or invalid trials and numbers that are not one distinct, non-negative
    number per trial (before the study is locked)."""
    if numbers is not None and len(numbers) != len(trials):
        raise ValueError(f"{len(numbers)} numbers given for {len(trials)} trials")
    for t in trials:
        if t.state not in _FINISHED:
            raise ValueError(f"only finished trials are written in bulk, not {t.state.name}")
        t._validate()
    if numbers is not None and numbers:
        given = [int(n) for n in numbers]
        repeated = sorted({n for n in given if given.count(n) > 1})
        if repeated or min(given) < 0:
            raise ValueError(
                f"trial numbers must be distinct and >= 0; got {repeated or min(given)}"
            )


def _numbers(conn: sa.Connection, study_id: int, n: int,
             numbers: Sequence[int] | None) -> list[int]:
    """The batch's numbers, under the study lock: the given ones if free, else the next
    ``n`` after the study's trial count, as Optuna numbers."""
    if numbers is None:
        base = conn.execute(
            sa.select(sa.func.count()).select_from(_TRIALS).where(
                _TRIALS.c.study_id == study_id
            )
        ).scalar_one()
        chosen = [base + i for i in range(n)]
    else:
        chosen = [int(x) for x in numbers]
    _check_free(conn, study_id, chosen)
    return chosen


class TrialNumberTaken(ValueError):
    """A trial number given by the caller is already some trial's in the study."""


def _check_free(conn: sa.Connection, study_id: int, numbers: list[int]) -> None:
    """Refuse numbers some trial of the study already has (read under the study lock)."""
    wanted = set(numbers)
    taken = sorted(
        int(n)
        for n in conn.execute(
            sa.select(_TRIALS.c.number).where(
                (_TRIALS.c.study_id == study_id)
                & (_TRIALS.c.number >= min(numbers))
                & (_TRIALS.c.number <= max(numbers))
            )
        ).scalars()
        if int(n) in wanted
    )
    if taken:
        raise TrialNumberTaken(
            f"trial number(s) {taken[:10]} already taken in study id {study_id}; numbers "
            "given by the caller must be new, and another writer numbering by arrival may "
            "have taken them"
        )


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
