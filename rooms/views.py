"""Read-only views of consults and participants, handed out of rooms/ instead of ORM rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rooms.identity import Role
from rooms.lifecycle import ConsultState
from rooms.models import Consult, Participant, TimelineEvent


@dataclass(frozen=True, slots=True)
class ParticipantView:
    """A participant of a consult as the rest of the server sees it."""

    id: str
    consult_id: str
    sub: str
    name: str
    role: Role
    hospital: str
    is_host: bool
    admitted: bool
    removed: bool

    @classmethod
    def of(cls, row: Participant) -> ParticipantView:
        """The view of a participant row."""
        return cls(
            id=row.id,
            consult_id=row.consult_id,
            sub=row.sub,
            name=row.name,
            role=Role(row.role),
            hospital=row.hospital_id,
            is_host=row.is_host,
            admitted=row.admitted_at is not None,
            removed=row.removed_at is not None,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the protocol's Participant without live presence)."""
        return {
            "participant_id": self.id,
            "sub": self.sub,
            "name": self.name,
            "role": self.role.value,
            "hospital": self.hospital,
            "is_host": self.is_host,
        }


@dataclass(frozen=True, slots=True)
class ConsultView:
    """A consult with its participants."""

    id: str
    kind: str
    hospital: str
    title: str
    state: ConsultState
    scheduled_at: datetime
    created_by: str
    started_at: datetime | None
    ended_at: datetime | None
    participants: tuple[ParticipantView, ...] = field(default_factory=tuple)

    @classmethod
    def of(cls, row: Consult) -> ConsultView:
        """The view of a consult row and its participants."""
        return cls(
            id=row.id,
            kind=row.kind,
            hospital=row.hospital_id,
            title=row.title,
            state=ConsultState(row.state),
            scheduled_at=row.scheduled_at,
            created_by=row.created_by,
            started_at=row.started_at,
            ended_at=row.ended_at,
            participants=tuple(ParticipantView.of(p) for p in row.participants),
        )

    @property
    def hosts(self) -> tuple[ParticipantView, ...]:
        """The participants who host the consult."""
        return tuple(p for p in self.participants if p.is_host)

    def participant(self, participant_id: str) -> ParticipantView | None:
        """The participant with this id, if any."""
        return next((p for p in self.participants if p.id == participant_id), None)

    def participant_of(self, hospital: str, sub: str) -> ParticipantView | None:
        """The participant who is the person ``(hospital, sub)``, if invited (removed or not)."""
        return next((p for p in self.participants if (p.hospital, p.sub) == (hospital, sub)), None)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the protocol's Consult)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "hospital": self.hospital,
            "title": self.title,
            "state": self.state.value,
            "scheduled_at": self.scheduled_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
        }


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One entry of a consult's timeline."""

    at: datetime
    actor_sub: str
    actor_name: str
    kind: str
    detail: dict[str, Any]
    #: The actor's hospital (a person is hospital and sub); None on entries from before it.
    actor_hospital: str | None = None

    @classmethod
    def of(cls, row: TimelineEvent) -> TimelineEntry:
        """The view of a timeline row."""
        return cls(
            row.at,
            row.actor_sub,
            row.actor_name,
            row.kind,
            dict(row.detail or {}),
            row.actor_hospital,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "at": self.at.isoformat(),
            "actor": {
                "sub": self.actor_sub,
                "name": self.actor_name,
                "hospital": self.actor_hospital,
            },
            "kind": self.kind,
            "detail": self.detail,
        }
