"""Initial tables: round summaries, exports and the pre-alembic version row.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema = op.create_table(
        "fusiontune_schema",
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    )
    op.bulk_insert(schema, [{"version": 1}])
    op.create_table(
        "fusiontune_rounds",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("study_name", sa.String(512), nullable=False, index=True),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("n_trials", sa.Integer, nullable=False),
        sa.Column("best_value", sa.Float, nullable=True),
        sa.Column("best_low", sa.Float, nullable=True),
        sa.Column("best_high", sa.Float, nullable=True),
        sa.Column("best_trial", sa.Integer, nullable=True),
        sa.Column("mean", sa.JSON, nullable=False),
        sa.Column("sigma", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("study_name", "round", name="uq_fusiontune_rounds_study_round"),
    )
    op.create_table(
        "fusiontune_exports",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("study_name", sa.String(512), nullable=False, index=True),
        sa.Column("trial_number", sa.Integer, nullable=True),
        sa.Column("path", sa.String(4096), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("fusiontune_exports")
    op.drop_table("fusiontune_rounds")
    op.drop_table("fusiontune_schema")
