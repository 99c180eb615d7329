"""fusiontune's own tables in the trial database, behind :class:`ProjectStore` and
:class:`ClaimBoard`; alembic revisions in ``migrations/``."""

from __future__ import annotations

from tuner.storage._check import StorageError, check_storage, sqlite_file, storage_error
from tuner.storage._claims import ClaimBoard, RoundProgress
from tuner.storage._migrate import HEAD, current_revision, migrate
from tuner.storage._optuna_tables import optuna_schema_is_current, optuna_study_names
from tuner.storage._tables import (
    ExportRecord,
    ProjectStore,
    RoundRecord,
    SchemaVersionError,
)
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
