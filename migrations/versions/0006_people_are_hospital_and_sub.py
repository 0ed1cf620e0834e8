"""a person is (hospital, sub): timeline actors name their hospital; namesakes of two hospitals
may both be invited to one consult

A participant of a consult may come from another hospital of the region, and a person is
(hospital, sub), never sub alone. Entries written before this revision keep a null hospital.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 09:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("timeline_events") as batch:
        batch.add_column(sa.Column("actor_hospital", sa.String(length=64), nullable=True))
    with op.batch_alter_table("participants") as batch:
        batch.drop_constraint("uq_participants_consult_id", type_="unique")
        batch.create_unique_constraint(
            "uq_participants_consult_id", ["consult_id", "hospital_id", "sub"]
        )


def downgrade() -> None:
    with op.batch_alter_table("participants") as batch:
        batch.drop_constraint("uq_participants_consult_id", type_="unique")
        batch.create_unique_constraint("uq_participants_consult_id", ["consult_id", "sub"])
    with op.batch_alter_table("timeline_events") as batch:
        batch.drop_column("actor_hospital")
