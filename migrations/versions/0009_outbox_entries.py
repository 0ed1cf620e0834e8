"""the outbox table is named for what it holds (outbox_entries), not for the package it was born in

The outbox serves webhooks as well as clinical documents. Its indexes and constraints follow the
naming convention of config.database, so they are renamed with it: PostgreSQL renames them in
place; SQLite cannot rename an index or a constraint, so they are dropped and created again.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 11:55:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXED_COLUMNS = ("consult_id", "document_id", "hospital_id", "next_attempt_at", "status")


def _rename(old: str, new: str) -> None:
    """Rename table ``old`` to ``new`` with its primary key, unique constraint and indexes."""
    op.rename_table(old, new)
    if op.get_bind().dialect.name == "postgresql":
        for prefix, suffix in (("pk", ""), ("uq", "_idempotency_key")):
            old_name, new_name = f"{prefix}_{old}{suffix}", f"{prefix}_{new}{suffix}"
            op.execute(f"ALTER TABLE {new} RENAME CONSTRAINT {old_name} TO {new_name}")
        for column in INDEXED_COLUMNS:
            op.execute(f"ALTER INDEX ix_{old}_{column} RENAME TO ix_{new}_{column}")
        return
    for column in INDEXED_COLUMNS:
        op.drop_index(f"ix_{old}_{column}", table_name=new)
    # The table is copied under its new name, with the renamed primary key and unique constraint.
    with op.batch_alter_table(new, recreate="always") as batch_op:
        batch_op.drop_constraint(f"uq_{old}_idempotency_key", type_="unique")
        batch_op.create_unique_constraint(f"uq_{new}_idempotency_key", ["idempotency_key"])
    for column in INDEXED_COLUMNS:
        op.create_index(f"ix_{new}_{column}", new, [column])


def upgrade() -> None:
    _rename("clinical_outbox", "outbox_entries")


def downgrade() -> None:
    _rename("outbox_entries", "clinical_outbox")
