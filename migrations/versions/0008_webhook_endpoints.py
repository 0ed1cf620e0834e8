"""webhook endpoints of each hospital (Standard Webhooks), their secrets encrypted

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-04 10:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import config.database

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("hospital_id", sa.String(length=64), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("secret_ciphertext", sa.String(length=512), nullable=False),
        sa.Column("event_types", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", config.database.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", config.database.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_index(op.f("ix_webhook_endpoints_hospital_id"), "webhook_endpoints", ["hospital_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_webhook_endpoints_hospital_id"), table_name="webhook_endpoints")
    op.drop_table("webhook_endpoints")
