"""fusiontune's own tables in the trial database, behind :class:`ProjectStore` and
:class:`ClaimBoard`; alembic revisions in ``migrations/``; a read-only snapshot of a study
(:func:`read_snapshot`) and the bulk trial writer (:func:`add_trials`).

Each name is imported from its module when it is first used (:mod:`tuner._exports`), so
that reading a study imports neither SQLAlchemy's ORM nor Optuna's table models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tuner._exports import lazy_exports

if TYPE_CHECKING:
    from tuner.storage._check import StorageError, check_storage, sqlite_file, storage_error
    from tuner.storage._claims import ClaimBoard, RoundProgress
    from tuner.storage._migrate import HEAD, SchemaVersionError, current_revision, migrate
    from tuner.storage._optuna_tables import optuna_schema_is_current, optuna_study_names
    from tuner.storage._tables import ExportRecord, ProjectStore, RoundRecord
    from tuner.storage._trial_reader import ReadOnlyStudyError, StudySnapshot, read_snapshot
    from tuner.storage._trial_writer import TrialNumberTaken, add_trials, write_trials

__all__ = [
    "HEAD",
    "ClaimBoard",
    "ExportRecord",
    "ProjectStore",
    "ReadOnlyStudyError",
    "RoundProgress",
    "RoundRecord",
    "SchemaVersionError",
    "StorageError",
    "StudySnapshot",
    "TrialNumberTaken",
    "add_trials",
    "check_storage",
    "current_revision",
    "migrate",
    "optuna_schema_is_current",
    "optuna_study_names",
    "read_snapshot",
    "sqlite_file",
    "storage_error",
    "write_trials",
]

_MODULES = {
    "_check": ("StorageError", "check_storage", "sqlite_file", "storage_error"),
    "_claims": ("ClaimBoard", "RoundProgress"),
    "_migrate": ("HEAD", "SchemaVersionError", "current_revision", "migrate"),
    "_optuna_tables": ("optuna_schema_is_current", "optuna_study_names"),
    "_tables": ("ExportRecord", "ProjectStore", "RoundRecord"),
    "_trial_reader": ("ReadOnlyStudyError", "StudySnapshot", "read_snapshot"),
    "_trial_writer": ("TrialNumberTaken", "add_trials", "write_trials"),
}

if not TYPE_CHECKING:  # mypy reads the imports above; a __getattr__ would hide typos from it
    __getattr__, __dir__ = lazy_exports(__name__, _MODULES)
