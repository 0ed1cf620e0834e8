"""timeline read by kind: an index for a consult's chat and consent entries; joins the two heads

A join reads the last chat messages and the recording consent of its consult; with this index
those reads stay one short index scan however long the consult's timeline grows.

Revision ID: 0005
Revises: 0003, 0004
Create Date: 2026-12-04 05:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = ("0003", "0004")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_timeline_events_consult_kind_at",
        "timeline_events",
        ["consult_id", "kind", "at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_timeline_events_consult_kind_at", table_name="timeline_events")
