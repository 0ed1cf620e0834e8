"""access audit log

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 19:13:57.203792
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import config.database

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", config.database.UTCDateTime(), nullable=False),
        sa.Column("actor_sub", sa.String(length=128), nullable=False),
        sa.Column("actor_role", sa.String(length=16), nullable=False),
        sa.Column("actor_hospital", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("resource_type", sa.String(length=32), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("consult_id", sa.String(length=36), nullable=True),
        sa.Column("hospital_id", sa.String(length=64), nullable=True),
        sa.Column("outcome", sa.String(length=64), nullable=False),
        sa.Column("client_address", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_actor_sub"), ["actor_sub"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_log_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_log_consult_id"), ["consult_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_log_hospital_id"), ["hospital_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_log_resource_id"), ["resource_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_resource_id"))
        batch_op.drop_index(batch_op.f("ix_audit_log_hospital_id"))
        batch_op.drop_index(batch_op.f("ix_audit_log_consult_id"))
        batch_op.drop_index(batch_op.f("ix_audit_log_at"))
        batch_op.drop_index(batch_op.f("ix_audit_log_actor_sub"))

    op.drop_table("audit_log")
