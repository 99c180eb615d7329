"""Claims of CEM members by workers; alembic's version table replaces fusiontune_schema.

One row per (study, round, member): ``open`` until a worker claims it (``claimed``, with
the worker's id and a heartbeat in database-clock epoch seconds), ``done`` once its trial is
written, in the same transaction. A claim whose heartbeat is older than the stale timeout is
claimable again; ``attempts`` counts the claims.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fusiontune_claims",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("study_name", sa.String(512), nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("member", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("worker", sa.String(256), nullable=True),
        sa.Column("heartbeat_at", sa.Float, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.UniqueConstraint(
            "study_name", "round", "member", name="uq_fusiontune_claims_study_round_member"
        ),
    )
    op.create_index(
        "ix_fusiontune_claims_study_round_state",
        "fusiontune_claims",
        ["study_name", "round", "state"],
    )
    op.drop_table("fusiontune_schema")


def downgrade() -> None:
    schema = op.create_table(
        "fusiontune_schema",
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    )
    op.bulk_insert(schema, [{"version": 1}])
    op.drop_index("ix_fusiontune_claims_study_round_state", table_name="fusiontune_claims")
    op.drop_table("fusiontune_claims")
