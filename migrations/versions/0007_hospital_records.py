"""hospitals as tenants: each hospital's record (names, issuers, record store, recording and ICE
settings) and its encrypted secrets, on the existing hospitals table

A hospital without a record (profile null) keeps the environment's settings.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 10:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import config.database

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("hospitals") as batch:
        batch.add_column(sa.Column("profile", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("secrets", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("updated_at", config.database.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("updated_by", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("hospitals") as batch:
        batch.drop_column("updated_by")
        batch.drop_column("updated_at")
        batch.drop_column("secrets")
        batch.drop_column("profile")
