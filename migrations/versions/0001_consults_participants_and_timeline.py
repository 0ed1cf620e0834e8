"""consults, participants and timeline

Revision ID: 0001
Revises:
Create Date: 2026-11-25 19:08:03.199242
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import config.database

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hospitals",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", config.database.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hospitals")),
    )
    op.create_table(
        "consults",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("hospital_id", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("scheduled_at", config.database.UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", config.database.UTCDateTime(), nullable=False),
        sa.Column("started_at", config.database.UTCDateTime(), nullable=True),
        sa.Column("ended_at", config.database.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["hospital_id"], ["hospitals.id"], name=op.f("fk_consults_hospital_id_hospitals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consults")),
    )
    with op.batch_alter_table("consults", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consults_hospital_id"), ["hospital_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_consults_state"), ["state"], unique=False)

    op.create_table(
        "participants",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("consult_id", sa.String(length=36), nullable=False),
        sa.Column("sub", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("hospital_id", sa.String(length=64), nullable=False),
        sa.Column("is_host", sa.Boolean(), nullable=False),
        sa.Column("admitted_at", config.database.UTCDateTime(), nullable=True),
        sa.Column("removed_at", config.database.UTCDateTime(), nullable=True),
        sa.Column("created_at", config.database.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["consult_id"],
            ["consults.id"],
            name=op.f("fk_participants_consult_id_consults"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participants")),
        sa.UniqueConstraint("consult_id", "sub", name=op.f("uq_participants_consult_id")),
    )
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_participants_sub"), ["sub"], unique=False)

    op.create_table(
        "timeline_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("consult_id", sa.String(length=36), nullable=False),
        sa.Column("at", config.database.UTCDateTime(), nullable=False),
        sa.Column("actor_sub", sa.String(length=128), nullable=False),
        sa.Column("actor_name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["consult_id"],
            ["consults.id"],
            name=op.f("fk_timeline_events_consult_id_consults"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_timeline_events")),
    )
    with op.batch_alter_table("timeline_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_timeline_events_consult_id"), ["consult_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("timeline_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_timeline_events_consult_id"))

    op.drop_table("timeline_events")
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_participants_sub"))

    op.drop_table("participants")
    with op.batch_alter_table("consults", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consults_state"))
        batch_op.drop_index(batch_op.f("ix_consults_hospital_id"))

    op.drop_table("consults")
    op.drop_table("hospitals")
