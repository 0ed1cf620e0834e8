"""clinical notes, prescriptions, allergies, outbox and SQL record store

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import config.database

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = (
    "prescriptions",
    "consultation_notes",
    "record_prescriptions",
    "record_notes",
    "record_encounters",
    "patient_allergies",
    "clinical_outbox",
)


def upgrade() -> None:
    op.create_table(
        "clinical_outbox",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("document_id", sa.String(length=36), nullable=False),
        sa.Column("consult_id", sa.String(length=36), nullable=False),
        sa.Column("hospital_id", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", config.database.UTCDateTime(), nullable=False),
        sa.Column("claimed_until", config.database.UTCDateTime(), nullable=True),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", config.database.UTCDateTime(), nullable=False),
        sa.Column("delivered_at", config.database.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clinical_outbox")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_clinical_outbox_idempotency_key")),
    )
    with op.batch_alter_table("clinical_outbox", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_clinical_outbox_consult_id"), ["consult_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_clinical_outbox_document_id"), ["document_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_clinical_outbox_hospital_id"), ["hospital_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_clinical_outbox_next_attempt_at"), ["next_attempt_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_clinical_outbox_status"), ["status"], unique=False)

    op.create_table(
        "patient_allergies",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("hospital_id", sa.String(length=64), nullable=False),
        sa.Column("patient_sub", sa.String(length=128), nullable=False),
        sa.Column("substance_code", sa.String(length=64), nullable=False),
        sa.Column("substance_name", sa.String(length=200), nullable=False),
        sa.Column("reaction", sa.String(length=200), nullable=True),
        sa.Column("recorded_by", sa.String(length=128), nullable=False),
        sa.Column("recorded_at", config.database.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient_allergies")),
        sa.UniqueConstraint(
            "hospital_id",
            "patient_sub",
            "substance_code",
            name=op.f("uq_patient_allergies_hospital_id"),
        ),
    )
    with op.batch_alter_table("patient_allergies", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_patient_allergies_hospital_id"), ["hospital_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_patient_allergies_patient_sub"), ["patient_sub"], unique=False
        )

    op.create_table(
        "record_encounters",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("hospital_id", sa.String(length=64), nullable=False),
        sa.Column("patient_sub", sa.String(length=128), nullable=False),
        sa.Column("encounter_class", sa.String(length=8), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("started_at", config.database.UTCDateTime(), nullable=True),
        sa.Column("recorded_at", config.database.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_encounters")),
    )
    with op.batch_alter_table("record_encounters", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_record_encounters_hospital_id"), ["hospital_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_record_encounters_patient_sub"), ["patient_sub"], unique=False
        )

    op.create_table(
        "record_notes",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("encounter_id", sa.String(length=36), nullable=False),
        sa.Column("amends_id", sa.String(length=36), nullable=True),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.Column("signing_key_id", sa.String(length=64), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("recorded_at", config.database.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["encounter_id"],
            ["record_encounters.id"],
            name=op.f("fk_record_notes_encounter_id_record_encounters"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_notes")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_record_notes_idempotency_key")),
    )
    with op.batch_alter_table("record_notes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_record_notes_encounter_id"), ["encounter_id"], unique=False
        )

    op.create_table(
        "record_prescriptions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("encounter_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.Column("signing_key_id", sa.String(length=64), nullable=False),
        sa.Column("review", sa.JSON(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("recorded_at", config.database.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["encounter_id"],
            ["record_encounters.id"],
            name=op.f("fk_record_prescriptions_encounter_id_record_encounters"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_prescriptions")),
        sa.UniqueConstraint(
            "idempotency_key", name=op.f("uq_record_prescriptions_idempotency_key")
        ),
    )
    with op.batch_alter_table("record_prescriptions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_record_prescriptions_encounter_id"), ["encounter_id"], unique=False
        )

    op.create_table(
        "consultation_notes",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("consult_id", sa.String(length=36), nullable=False),
        sa.Column("hospital_id", sa.String(length=64), nullable=False),
        sa.Column("patient_sub", sa.String(length=128), nullable=False),
        sa.Column("patient_name", sa.String(length=200), nullable=False),
        sa.Column("author_sub", sa.String(length=128), nullable=False),
        sa.Column("author_name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("amends_id", sa.String(length=36), nullable=True),
        sa.Column("amendment_reason", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("subjective", sa.Text(), nullable=False),
        sa.Column("objective", sa.Text(), nullable=False),
        sa.Column("assessment", sa.Text(), nullable=False),
        sa.Column("plan", sa.Text(), nullable=False),
        sa.Column("diagnoses", sa.JSON(), nullable=False),
        sa.Column("created_at", config.database.UTCDateTime(), nullable=False),
        sa.Column("updated_at", config.database.UTCDateTime(), nullable=False),
        sa.Column("signed_at", config.database.UTCDateTime(), nullable=True),
        sa.Column("signed_document", sa.JSON(), nullable=True),
        sa.Column("signature", sa.String(length=128), nullable=True),
        sa.Column("signing_key_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["amends_id"],
            ["consultation_notes.id"],
            name=op.f("fk_consultation_notes_amends_id_consultation_notes"),
        ),
        sa.ForeignKeyConstraint(
            ["consult_id"],
            ["consults.id"],
            name=op.f("fk_consultation_notes_consult_id_consults"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consultation_notes")),
    )
    with op.batch_alter_table("consultation_notes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_consultation_notes_author_sub"), ["author_sub"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_consultation_notes_consult_id"), ["consult_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_consultation_notes_hospital_id"), ["hospital_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_consultation_notes_patient_sub"), ["patient_sub"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_consultation_notes_status"), ["status"], unique=False)

    op.create_table(
        "prescriptions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("consult_id", sa.String(length=36), nullable=False),
        sa.Column("hospital_id", sa.String(length=64), nullable=False),
        sa.Column("patient_sub", sa.String(length=128), nullable=False),
        sa.Column("patient_name", sa.String(length=200), nullable=False),
        sa.Column("prescriber_sub", sa.String(length=128), nullable=False),
        sa.Column("prescriber_name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("safety_findings", sa.JSON(), nullable=False),
        sa.Column("override_reason", sa.Text(), nullable=True),
        sa.Column("created_at", config.database.UTCDateTime(), nullable=False),
        sa.Column("updated_at", config.database.UTCDateTime(), nullable=False),
        sa.Column("signed_at", config.database.UTCDateTime(), nullable=True),
        sa.Column("signed_document", sa.JSON(), nullable=True),
        sa.Column("signature", sa.String(length=128), nullable=True),
        sa.Column("signing_key_id", sa.String(length=64), nullable=True),
        sa.Column("reviewer_sub", sa.String(length=128), nullable=True),
        sa.Column("reviewer_name", sa.String(length=200), nullable=True),
        sa.Column("review_reason", sa.Text(), nullable=True),
        sa.Column("reviewed_at", config.database.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["consult_id"],
            ["consults.id"],
            name=op.f("fk_prescriptions_consult_id_consults"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prescriptions")),
    )
    with op.batch_alter_table("prescriptions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_prescriptions_consult_id"), ["consult_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_prescriptions_hospital_id"), ["hospital_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_prescriptions_patient_sub"), ["patient_sub"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_prescriptions_prescriber_sub"), ["prescriber_sub"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_prescriptions_status"), ["status"], unique=False)


def downgrade() -> None:
    for table in TABLES:
        op.drop_table(table)
