"""Consultation notes: drafts the doctor saves as they type, signing, and amendments."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from clinical.access import (
    audited,
    consult_doctor,
    consult_patient,
    consult_snapshot,
    is_patient_of,
    load_consult,
    person,
    require_consult_doctor,
)
from clinical.errors import DocumentSigned, NoteNotFound, NotSigned
from clinical.models import ConsultationNote
from clinical.signing import DocumentSigner
from config.database import Database
from outbox.queue import DeliveryStatus, Outbox
from rooms.audit import AuditLog
from rooms.errors import Forbidden, InvalidPayload
from rooms.identity import Identity
from rooms.models import utcnow
from rooms.service import ConsultService

logger = logging.getLogger(__name__)

DRAFT, SIGNED = "draft", "signed"
SOAP = ("subjective", "objective", "assessment", "plan")


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """A diagnosis: an ICD-10 code and its text."""

    code: str
    text: str

    def as_dict(self) -> dict[str, str]:
        """JSON-ready form."""
        return {"code": self.code, "text": self.text}


@dataclass(frozen=True, slots=True)
class NoteDraft:
    """The parts of a note a doctor writes; ``None`` leaves a part as it is."""

    subjective: str | None = None
    objective: str | None = None
    assessment: str | None = None
    plan: str | None = None
    diagnoses: Sequence[Diagnosis] | None = None


@dataclass(frozen=True, slots=True)
class NoteView:
    """A note as the API shows it."""

    row: ConsultationNote
    delivery: DeliveryStatus | None = None
    amended_by: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        row = self.row
        return {
            "id": row.id,
            "consult_id": row.consult_id,
            "hospital": row.hospital_id,
            "patient": person(row.patient_sub, row.patient_name),
            "author": person(row.author_sub, row.author_name),
            "version": row.version,
            "amends": row.amends_id,
            "amendment_reason": row.amendment_reason,
            "amended_by": self.amended_by,
            "status": row.status,
            **{part: getattr(row, part) for part in SOAP},
            "diagnoses": list(row.diagnoses or []),
            "created_at": row.created_at.isoformat(),
            "updated_at": row.updated_at.isoformat(),
            "signed_at": row.signed_at.isoformat() if row.signed_at else None,
            "signature": (
                {"algorithm": "Ed25519", "key_id": row.signing_key_id, "value": row.signature}
                if row.signature
                else None
            ),
            "signed_document": row.signed_document,
            "delivery": self.delivery.as_dict() if self.delivery else None,
        }


def _apply(row: ConsultationNote, draft: NoteDraft) -> None:
    for part in SOAP:
        value = getattr(draft, part)
        if value is not None:
            setattr(row, part, value)
    if draft.diagnoses is not None:
        row.diagnoses = [d.as_dict() for d in draft.diagnoses]


def _check_complete(row: ConsultationNote) -> None:
    errors = [
        {"field": part, "message": "required to sign the note"}
        for part in ("assessment", "plan")
        if not getattr(row, part).strip()
    ]
    if not row.diagnoses:
        errors.append({"field": "diagnoses", "message": "at least one diagnosis is required"})
    if errors:
        raise InvalidPayload("The note is not complete", details=errors)


class NoteService:
    """Writes, signs, amends and reads consultation notes; every access is audited.

    :param database: where notes live.
    :param audit: the access audit log.
    :param signer: the server's document signing key.
    :param outbox: the queue to the record store.
    :param consults: the consult service (timeline entries).
    :param clock: the current UTC time.
    """

    def __init__(
        self,
        database: Database,
        audit: AuditLog,
        signer: DocumentSigner,
        outbox: Outbox,
        consults: ConsultService,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._database = database
        self._audit = audit
        self._signer = signer
        self._outbox = outbox
        self._consults = consults
        self._clock = clock

    async def create(
        self, caller: Identity, consult_id: str, draft: NoteDraft, address: str | None = None
    ) -> NoteView:
        """Start a draft note for a consult (its doctors only)."""
        async with audited(self._audit, caller, "create", "note", consult_id, address) as scope:
            consult = await load_consult(self._database, consult_id)
            scope.about(consult.id, consult.hospital)
            require_consult_doctor(caller, consult)
            patient = consult_patient(consult)
            now = self._clock()
            row = ConsultationNote(
                consult_id=consult.id,
                hospital_id=consult.hospital,
                patient_sub=patient.sub,
                patient_name=patient.name,
                author_sub=caller.sub,
                author_name=caller.name,
                version=1,
                status=DRAFT,
                subjective="",
                objective="",
                assessment="",
                plan="",
                diagnoses=[],
                created_at=now,
                updated_at=now,
            )
            _apply(row, draft)
            async with self._database.transaction() as session:
                session.add(row)
            scope.resource_id = row.id
        return NoteView(row)

    async def get(self, caller: Identity, note_id: str, address: str | None = None) -> NoteView:
        """A note, for the consult's doctors, or its patient once signed."""
        async with audited(self._audit, caller, "view", "note", note_id, address) as scope:
            row = await self._row(note_id)
            scope.about(row.consult_id, row.hospital_id)
            await self._require_reader(caller, row)
        return await self._view(row)

    async def update(
        self, caller: Identity, note_id: str, draft: NoteDraft, address: str | None = None
    ) -> NoteView:
        """Save a draft as the doctor types; a signed note cannot change."""
        async with audited(self._audit, caller, "update", "note", note_id, address) as scope:
            async with self._database.transaction() as session:
                row = await self._owned_draft(session, caller, note_id, scope)
                _apply(row, draft)
                row.updated_at = self._clock()
        return NoteView(row)

    async def sign(self, caller: Identity, note_id: str, address: str | None = None) -> NoteView:
        """Sign a draft: freeze it, sign its canonical form, and queue it for the record store."""
        async with audited(self._audit, caller, "sign", "note", note_id, address) as scope:
            consult = None
            async with self._database.transaction() as session:
                row = await self._owned_draft(session, caller, note_id, scope)
                _check_complete(row)
                consult = await load_consult(self._database, row.consult_id)
                now = self._clock()
                document = {
                    "type": "consultation-note",
                    "id": row.id,
                    "version": row.version,
                    "amends": row.amends_id,
                    "amendment_reason": row.amendment_reason,
                    "consult": consult_snapshot(consult),
                    "patient": person(row.patient_sub, row.patient_name),
                    "author": person(row.author_sub, row.author_name),
                    "signer": {
                        "sub": caller.sub,
                        "name": caller.name,
                        "role": caller.role.value,
                        "hospital": caller.hospital,
                    },
                    "signed_at": now.isoformat(),
                    "soap": {part: getattr(row, part) for part in SOAP},
                    "diagnoses": list(row.diagnoses),
                }
                signature = self._signer.sign(document)
                row.status = SIGNED
                row.signed_at = now
                row.updated_at = now
                row.signed_document = document
                row.signature = signature.value
                row.signing_key_id = signature.key_id
                self._outbox.enqueue(
                    session,
                    kind="note",
                    idempotency_key=f"note:{row.id}",
                    document_id=row.id,
                    consult_id=row.consult_id,
                    hospital_id=row.hospital_id,
                    payload={
                        "document": document,
                        "signature": {
                            "algorithm": signature.algorithm,
                            "key_id": signature.key_id,
                            "value": signature.value,
                        },
                        "consult": document["consult"],
                        "practitioner": document["author"],
                    },
                )
        self._outbox.notify()
        await self._consults.note(row.consult_id, caller, "note_signed", {"note_id": row.id})
        logger.info("note signed", extra={"note_id": row.id, "version": row.version})
        return await self._view(row)

    async def amend(
        self,
        caller: Identity,
        note_id: str,
        draft: NoteDraft,
        reason: str,
        address: str | None = None,
    ) -> NoteView:
        """Start an amendment of a signed note: a new draft version, with a reason, linked to it.

        Parts not given are copied from the amended version; sign the amendment to make it count.
        """
        async with audited(self._audit, caller, "amend", "note", note_id, address) as scope:
            original = await self._row(note_id)
            scope.about(original.consult_id, original.hospital_id)
            consult = await load_consult(self._database, original.consult_id)
            require_consult_doctor(caller, consult)
            if original.status != SIGNED:
                raise NotSigned("Only a signed note is amended; edit the draft instead")
            if not reason.strip():
                raise InvalidPayload(
                    "An amendment needs a reason",
                    details=[{"field": "reason", "message": "required"}],
                )
            now = self._clock()
            row = ConsultationNote(
                consult_id=original.consult_id,
                hospital_id=original.hospital_id,
                patient_sub=original.patient_sub,
                patient_name=original.patient_name,
                author_sub=caller.sub,
                author_name=caller.name,
                version=original.version + 1,
                amends_id=original.id,
                amendment_reason=reason,
                status=DRAFT,
                **{part: getattr(original, part) for part in SOAP},
                diagnoses=list(original.diagnoses),
                created_at=now,
                updated_at=now,
            )
            _apply(row, draft)
            async with self._database.transaction() as session:
                session.add(row)
            scope.detail = {"amendment_id": row.id}
        return NoteView(row)

    async def for_consult(self, caller: Identity, consult_id: str) -> list[NoteView]:
        """The consult's notes this caller may read (no audit: the caller audits the listing)."""
        consult = await load_consult(self._database, consult_id)
        async with self._database.sessions() as session:
            rows = list(
                await session.scalars(
                    select(ConsultationNote)
                    .where(ConsultationNote.consult_id == consult_id)
                    .order_by(ConsultationNote.created_at, ConsultationNote.version)
                )
            )
        if consult_doctor(caller, consult) is None:
            rows = [
                row
                for row in rows
                if row.status == SIGNED
                and is_patient_of(caller, row.consult_id, row.patient_sub, row.hospital_id)
            ]
        return await self._views(rows)

    async def _view(self, row: ConsultationNote) -> NoteView:
        return (await self._views([row]))[0]

    async def _views(self, rows: list[ConsultationNote]) -> list[NoteView]:
        statuses = await self._outbox.statuses(row.id for row in rows)
        async with self._database.sessions() as session:
            amendments = list(
                await session.execute(
                    select(ConsultationNote.amends_id, ConsultationNote.id).where(
                        ConsultationNote.amends_id.in_([row.id for row in rows])
                    )
                )
            )
        return [
            NoteView(
                row,
                statuses.get(row.id),
                [amendment for amends, amendment in amendments if amends == row.id],
            )
            for row in rows
        ]

    async def _row(self, note_id: str) -> ConsultationNote:
        async with self._database.sessions() as session:
            row = await session.get(ConsultationNote, note_id)
        if row is None:
            raise NoteNotFound("No such note")
        return row

    async def _require_reader(self, caller: Identity, row: ConsultationNote) -> None:
        consult = await load_consult(self._database, row.consult_id)
        if consult_doctor(caller, consult) is not None:
            return
        if row.status == SIGNED and is_patient_of(
            caller, row.consult_id, row.patient_sub, row.hospital_id
        ):
            return
        raise NoteNotFound("No such note")

    async def _owned_draft(
        self, session: Any, caller: Identity, note_id: str, scope: Any
    ) -> ConsultationNote:
        row = await session.get(ConsultationNote, note_id)
        if row is None:
            raise NoteNotFound("No such note")
        scope.about(row.consult_id, row.hospital_id)
        consult = await load_consult(self._database, row.consult_id)
        require_consult_doctor(caller, consult)
        if row.author_sub != caller.sub:
            raise Forbidden("Only the note's author edits and signs it")
        if row.status != DRAFT:
            raise DocumentSigned("A signed note cannot change; write an amendment")
        return row
