"""recordings, their review (scores, timed comments) and per-hospital policies

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-25 19:22:50.444584
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import config.database

revision: str = "0004"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "recording_policies",
        sa.Column("hospital_id", sa.String(length=64), nullable=False),
        sa.Column("retention_days", sa.Integer(), nullable=False),
        sa.Column("rubric", sa.JSON(), nullable=False),
        sa.Column("updated_at", config.database.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("hospital_id", name=op.f("pk_recording_policies")),
    )
    op.create_table(
        "recordings",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("consult_id", sa.String(length=36), nullable=False),
        sa.Column("hospital_id", sa.String(length=64), nullable=False),
        sa.Column("doctor_sub", sa.String(length=128), nullable=False),
        sa.Column("doctor_name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("started_at", config.database.UTCDateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", config.database.UTCDateTime(timezone=True), nullable=True),
        sa.Column("started_by", sa.String(length=128), nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("consent", sa.JSON(), nullable=False),
        sa.Column("rendition_status", sa.String(length=16), nullable=False),
        sa.Column("rendition_progress", sa.Integer(), nullable=False),
        sa.Column("rendition_file", sa.String(length=64), nullable=True),
        sa.Column("deleted_at", config.database.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["consult_id"],
            ["consults.id"],
            name=op.f("fk_recordings_consult_id_consults"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recordings")),
    )
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recordings_consult_id"), ["consult_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_recordings_doctor_sub"), ["doctor_sub"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_recordings_hospital_id"), ["hospital_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_recordings_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_recordings_started_at"), ["started_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_recordings_status"), ["status"], unique=False)

    op.create_table(
        "recording_comments",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("recording_id", sa.String(length=36), nullable=False),
        sa.Column("author_sub", sa.String(length=128), nullable=False),
        sa.Column("author_name", sa.String(length=200), nullable=False),
        sa.Column("offset_seconds", sa.Float(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", config.database.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["recordings.id"],
            name=op.f("fk_recording_comments_recording_id_recordings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recording_comments")),
    )
    with op.batch_alter_table("recording_comments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_recording_comments_recording_id"), ["recording_id"], unique=False
        )

    op.create_table(
        "recording_reviews",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("recording_id", sa.String(length=36), nullable=False),
        sa.Column("reviewer_sub", sa.String(length=128), nullable=False),
        sa.Column("reviewer_name", sa.String(length=200), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_at", config.database.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["recordings.id"],
            name=op.f("fk_recording_reviews_recording_id_recordings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recording_reviews")),
    )
    with op.batch_alter_table("recording_reviews", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_recording_reviews_recording_id"), ["recording_id"], unique=False
        )

    op.create_table(
        "recording_scores",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("review_id", sa.String(length=36), nullable=False),
        sa.Column("criterion", sa.String(length=200), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["review_id"],
            ["recording_reviews.id"],
            name=op.f("fk_recording_scores_review_id_recording_reviews"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recording_scores")),
    )
    with op.batch_alter_table("recording_scores", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_recording_scores_review_id"), ["review_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("recording_scores", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recording_scores_review_id"))

    op.drop_table("recording_scores")
    with op.batch_alter_table("recording_reviews", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recording_reviews_recording_id"))

    op.drop_table("recording_reviews")
    with op.batch_alter_table("recording_comments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recording_comments_recording_id"))

    op.drop_table("recording_comments")
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recordings_status"))
        batch_op.drop_index(batch_op.f("ix_recordings_started_at"))
        batch_op.drop_index(batch_op.f("ix_recordings_kind"))
        batch_op.drop_index(batch_op.f("ix_recordings_hospital_id"))
        batch_op.drop_index(batch_op.f("ix_recordings_doctor_sub"))
        batch_op.drop_index(batch_op.f("ix_recordings_consult_id"))

    op.drop_table("recordings")
    op.drop_table("recording_policies")
