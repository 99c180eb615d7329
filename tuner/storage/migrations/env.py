"""Alembic environment of fusiontune's own tables, run programmatically.

:mod:`tuner.storage._migrate` hands over an open connection (``config.attributes``);
there is no ``alembic.ini``. fusiontune keeps its revision in its own version table,
``fusiontune_alembic_version``, beside Optuna's ``alembic_version`` in the same database.
"""

from __future__ import annotations

from alembic import context

VERSION_TABLE = "fusiontune_alembic_version"

connection = context.config.attributes["connection"]
context.configure(connection=connection, version_table=VERSION_TABLE, target_metadata=None)
with context.begin_transaction():
    context.run_migrations()
