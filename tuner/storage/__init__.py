"""fusiontune's own tables in the trial database, behind :class:`ProjectStore`."""

from __future__ import annotations

from tuner.storage._tables import (
    SCHEMA_VERSION,
    ExportRecord,
    ProjectStore,
    RoundRecord,
    SchemaVersionError,
)

__all__ = ["SCHEMA_VERSION", "ExportRecord", "ProjectStore", "RoundRecord", "SchemaVersionError"]
