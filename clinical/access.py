"""Who may touch which clinical document, and the audit entry every access leaves behind."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from config.database import Database
from rooms.audit import AuditLog, AuditRecord
from rooms.errors import (
    ConsultNotFound,
    DomainError,
    Forbidden,
    IdentityTokenRequired,
    InvalidPayload,
)
from rooms.identity import HOST_ROLES, Identity, Role
from rooms.models import Consult
from rooms.views import ConsultView, ParticipantView

logger = logging.getLogger(__name__)


@dataclass
class AuditScope:
    """What an audited access touched, filled in as the handler learns it.

    :param resource_id: the document (or consult) id.
    """

    resource_id: str
    consult_id: str | None = None
    hospital_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def about(self, consult_id: str, hospital_id: str) -> None:
        """Name the consult and hospital the resource belongs to."""
        self.consult_id, self.hospital_id = consult_id, hospital_id


@asynccontextmanager
async def audited(
    log: AuditLog,
    caller: Identity,
    action: str,
    resource_type: str,
    resource_id: str,
    address: str | None,
) -> AsyncIterator[AuditScope]:
    """Audit one access: ``allowed`` when the block succeeds, ``refused:<code>`` when it refuses.

    :param log: the access audit log.
    :param caller: who asks.
    :param action: ``create``, ``view``, ``update``, ``sign``, ``amend``, ``review``, ``list``, …
    :param resource_type: ``note``, ``prescription``, ``allergies``, ``outbox``, …
    :param resource_id: the id asked for.
    :param address: the client's address.
    """
    scope = AuditScope(resource_id)
    try:
        yield scope
    except DomainError as exc:
        record = AuditRecord(
            action,
            resource_type,
            scope.resource_id,
            scope.consult_id,
            scope.hospital_id,
            f"refused:{exc.code}",
        )
        await log.record(caller, record, address, scope.detail)
        raise
    record = AuditRecord(
        action, resource_type, scope.resource_id, scope.consult_id, scope.hospital_id
    )
    await log.record(caller, record, address, scope.detail)


async def load_consult(database: Database, consult_id: str) -> ConsultView:
    """The consult with its participants.

    :raises ConsultNotFound: for an unknown id.
    """
    async with database.sessions() as session:
        row = await session.get(Consult, consult_id)
        if row is None:
            raise ConsultNotFound("No such consult")
        return ConsultView.of(row)


def consult_doctor(caller: Identity, consult: ConsultView) -> ParticipantView | None:
    """The caller as a doctor (or expert) of this consult, or None.

    Only the doctor's own identity token counts: a join link, a removed participant, or a token
    whose role is not a doctor's does not.
    """
    if caller.role not in HOST_ROLES or caller.is_join_link:
        return None
    participant = consult.participant_of(caller.hospital, caller.sub)
    if participant is None or participant.removed or participant.role not in HOST_ROLES:
        return None
    return participant


def require_consult_doctor(caller: Identity, consult: ConsultView) -> ParticipantView:
    """The caller as a doctor of the consult.

    :raises IdentityTokenRequired: for a join link: only a doctor's own identity token writes.
    :raises ConsultNotFound: when the caller has no business with this consult at all.
    :raises Forbidden: when the caller is in the consult but is not one of its doctors.
    """
    if caller.is_join_link:
        raise IdentityTokenRequired("Clinical documents need your own identity token")
    doctor = consult_doctor(caller, consult)
    if doctor is not None:
        return doctor
    invited = consult.participant_of(caller.hospital, caller.sub)
    if invited is None and caller.hospital != consult.hospital:
        raise ConsultNotFound("No such consult")
    raise Forbidden("Only the consult's doctors write and sign clinical documents")


def consult_patient(consult: ConsultView) -> ParticipantView:
    """The consult's patient.

    :raises InvalidPayload: when the consult has no patient to write about.
    """
    patient = next((p for p in consult.participants if p.role is Role.PATIENT), None)
    if patient is None:
        raise InvalidPayload("This consult has no patient")
    return patient


def is_patient_of(caller: Identity, consult_id: str, patient_sub: str, hospital: str) -> bool:
    """True when the caller is the patient a document is about, with their own identity token.

    A join link reads no clinical document: it was minted by the server, not the patient's
    hospital, and travels in messages and browser histories.
    """
    if caller.role is not Role.PATIENT or caller.is_join_link:
        return False
    return caller.is_person(hospital, patient_sub)


def consult_snapshot(consult: ConsultView) -> dict[str, Any]:
    """What a signed document records of its consult (the encounter in the medical record)."""
    return {
        "id": consult.id,
        "kind": consult.kind,
        "title": consult.title,
        "hospital": consult.hospital,
        "state": consult.state.value,
        "started_at": consult.started_at.isoformat() if consult.started_at else None,
    }


def person(sub: str, name: str) -> dict[str, str]:
    """A person as documents name them."""
    return {"sub": sub, "name": name}
