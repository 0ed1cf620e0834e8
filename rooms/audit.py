"""The access audit log: every read and write of recordings and clinical records, and refusals.

The consult timeline says what happened in a consult; this log says who touched which health
record, when and from where, whether it was allowed or refused. Entries are never updated.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

from config.database import Base, Database, UTCDateTime
from rooms.identity import Identity
from rooms.models import utcnow

logger = logging.getLogger(__name__)


class AuditEntry(Base):
    """One access to a health record (allowed or refused)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor_sub: Mapped[str] = mapped_column(String(128), index=True)
    actor_role: Mapped[str] = mapped_column(String(16))
    actor_hospital: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    resource_type: Mapped[str] = mapped_column(String(32))
    resource_id: Mapped[str] = mapped_column(String(64), index=True)
    consult_id: Mapped[str | None] = mapped_column(String(36), index=True)
    hospital_id: Mapped[str | None] = mapped_column(String(64), index=True)
    outcome: Mapped[str] = mapped_column(String(64))
    client_address: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """What to write about one access.

    :param action: what was done (``view``, ``stream``, ``download``, ``create``, ``sign``, …).
    :param resource_type: what was touched (``recording``, ``note``, ``prescription``, …).
    :param resource_id: its id.
    :param consult_id: the consult it belongs to, when known.
    :param hospital_id: the hospital it belongs to, when known.
    :param outcome: ``allowed`` or ``refused:<code>``.
    """

    action: str
    resource_type: str
    resource_id: str
    consult_id: str | None = None
    hospital_id: str | None = None
    outcome: str = "allowed"


class AuditLog:
    """Writes and lists audit entries.

    :param database: where entries are stored.
    """

    def __init__(self, database: Database) -> None:
        self._database = database

    async def record(
        self,
        actor: Identity,
        what: AuditRecord,
        client_address: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Append one entry (in its own transaction, so a refused request is audited too)."""
        async with self._database.transaction() as session:
            session.add(
                AuditEntry(
                    at=utcnow(),
                    actor_sub=actor.sub,
                    actor_role=actor.role.value,
                    actor_hospital=actor.hospital,
                    action=what.action,
                    resource_type=what.resource_type,
                    resource_id=what.resource_id,
                    consult_id=what.consult_id,
                    hospital_id=what.hospital_id,
                    outcome=what.outcome,
                    client_address=client_address,
                    detail=detail or {},
                )
            )
        logger.info(
            "audit",
            extra={
                "action": what.action,
                "resource_type": what.resource_type,
                "resource_id": what.resource_id,
                "outcome": what.outcome,
            },
        )

    async def entries(
        self,
        *,
        hospital_id: str | None = None,
        resource_type: str | None = None,
        resource_id: str | None = None,
        actor_sub: str | None = None,
        actor_hospital: str | None = None,
        limit: int = 200,
    ) -> list[AuditEntry]:
        """The newest entries first, filtered; callers authorise before asking.

        A person is ``(actor_hospital, actor_sub)``: the same subject at another hospital is
        someone else.
        """
        query = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        if hospital_id is not None:
            query = query.where(AuditEntry.hospital_id == hospital_id)
        if resource_type is not None:
            query = query.where(AuditEntry.resource_type == resource_type)
        if resource_id is not None:
            query = query.where(AuditEntry.resource_id == resource_id)
        if actor_sub is not None:
            query = query.where(AuditEntry.actor_sub == actor_sub)
        if actor_hospital is not None:
            query = query.where(AuditEntry.actor_hospital == actor_hospital)
        async with self._database.sessions() as session:
            return list(await session.scalars(query.limit(limit)))
