"""Tables of the consult domain: hospitals, consults, participants and the consult timeline."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column, relationship

from config.database import Base, UTCDateTime


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def new_id() -> str:
    """A new random identifier."""
    return str(uuid.uuid4())


class Hospital(Base):
    """A hospital of the network; its id is the ``hospital`` claim of its tokens."""

    __tablename__ = "hospitals"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: The hospital's record (rooms.hospitals.HospitalProfile without its secrets); ``None``
    #: until an administrator writes one: the environment's settings apply.
    profile: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: The record's secrets, each encrypted (config.secrets.SecretBox), by name.
    secrets: Mapped[dict[str, str] | None] = mapped_column(JSON)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_by: Mapped[str | None] = mapped_column(String(128))


class Consult(Base):
    """A scheduled video consult: a visit, a referral or a conference."""

    __tablename__ = "consults"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(16))
    hospital_id: Mapped[str] = mapped_column(ForeignKey("hospitals.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16), index=True)
    scheduled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    participants: Mapped[list[Participant]] = relationship(
        back_populates="consult", order_by="Participant.created_at", lazy="selectin"
    )


class Participant(Base):
    """Someone invited into a consult, with their role there and where they stand."""

    __tablename__ = "participants"
    # A person is (hospital, sub): namesakes of two hospitals may both be invited.
    __table_args__ = (UniqueConstraint("consult_id", "hospital_id", "sub"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    consult_id: Mapped[str] = mapped_column(ForeignKey("consults.id", ondelete="CASCADE"))
    sub: Mapped[str] = mapped_column(String(128), index=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    hospital_id: Mapped[str] = mapped_column(String(64))
    is_host: Mapped[bool] = mapped_column(Boolean, default=False)
    admitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    consult: Mapped[Consult] = relationship(back_populates="participants")


class TimelineEvent(Base):
    """One entry of a consult's audit trail: who did what, when."""

    __tablename__ = "timeline_events"
    # A join reads a consult's last chat messages and its recording consent by kind.
    __table_args__ = (Index("ix_timeline_events_consult_kind_at", "consult_id", "kind", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    consult_id: Mapped[str] = mapped_column(
        ForeignKey("consults.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_sub: Mapped[str] = mapped_column(String(128))
    #: A person is (hospital, sub); empty on entries written before it was kept.
    actor_hospital: Mapped[str | None] = mapped_column(String(64), nullable=True)
    actor_name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


async def ensure_hospital(session: AsyncSession, hospital_id: str, name: str) -> None:
    """
    Add the hospital's row unless it exists, also when another transaction adds it at once.

    :param session: The caller's session (inside its transaction).
    :param hospital_id: The hospital's id.
    :param name: Its name, for a new row.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    await session.execute(
        insert(Hospital)
        .values(id=hospital_id, name=name, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["id"])
    )
