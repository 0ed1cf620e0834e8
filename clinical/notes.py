"""Consultation notes: SOAP and diagnoses, drafted as the doctor types, signed, and amended."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from clinical import fhir
from clinical.access import AuditScope, audited, load_consult, require_consult_doctor
from clinical.documents import DRAFT, SIGNED, DocumentView, SignedDocuments, record_of
from clinical.errors import NoteNotFound, NotSigned
from clinical.models import ConsultationNote, Prescription
from rooms.errors import InvalidPayload
from rooms.identity import Identity

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
class NoteView(DocumentView[ConsultationNote]):
    """A note as the API shows it, with the amendments that name it."""

    amended_by: list[str] = field(default_factory=list)

    def own(self) -> dict[str, Any]:
        """The version, its amendment links, SOAP and diagnoses."""
        row = self.row
        return {
            "version": row.version,
            "amends": row.amends_id,
            "amendment_reason": row.amendment_reason,
            "amended_by": self.amended_by,
            **{part: getattr(row, part) for part in SOAP},
            "diagnoses": list(row.diagnoses or []),
        }


def _apply(row: ConsultationNote, draft: NoteDraft) -> None:
    for part in SOAP:
        value = getattr(draft, part)
        if value is not None:
            setattr(row, part, value)
    if draft.diagnoses is not None:
        row.diagnoses = [d.as_dict() for d in draft.diagnoses]


async def _signed_content(row: ConsultationNote, scope: AuditScope) -> dict[str, Any]:
    """The note's part of its signed form, once it is complete enough to sign."""
    errors = [
        {"field": part, "message": "required to sign the note"}
        for part in ("assessment", "plan")
        if not getattr(row, part).strip()
    ]
    if not row.diagnoses:
        errors.append({"field": "diagnoses", "message": "at least one diagnosis is required"})
    if errors:
        raise InvalidPayload("The note is not complete", details=errors)
    return {
        "version": row.version,
        "amends": row.amends_id,
        "amendment_reason": row.amendment_reason,
        "soap": {part: getattr(row, part) for part in SOAP},
        "diagnoses": list(row.diagnoses),
    }


async def _signed_prescriptions_before(
    session: AsyncSession, note: ConsultationNote
) -> list[Prescription]:
    """The prescriptions of the note's consult signed before the note, in signing order."""
    rows = await session.scalars(
        select(Prescription)
        .where(
            Prescription.consult_id == note.consult_id,
            Prescription.status != DRAFT,
            Prescription.signed_at <= note.signed_at,
        )
        .order_by(Prescription.signed_at)
    )
    return list(rows)


class NoteService(SignedDocuments[ConsultationNote, NoteView]):
    """Writes, signs, amends and reads consultation notes; every access is audited."""

    model = ConsultationNote
    kind = "note"
    document_type = "consultation-note"
    not_found = NoteNotFound
    only_author = "Only the note's author edits and signs it"
    immutable = "A signed note cannot change; write an amendment"
    order = (ConsultationNote.created_at, ConsultationNote.version)

    async def create(
        self, caller: Identity, consult_id: str, draft: NoteDraft, address: str | None = None
    ) -> NoteView:
        """Start a draft note for a consult (its doctors only)."""
        row = ConsultationNote(
            version=1, subjective="", objective="", assessment="", plan="", diagnoses=[]
        )
        _apply(row, draft)
        return NoteView(await self._create(caller, consult_id, row, address))

    async def update(
        self, caller: Identity, note_id: str, draft: NoteDraft, address: str | None = None
    ) -> NoteView:
        """Save a draft as the doctor types; a signed note cannot change."""
        return NoteView(
            await self._update(caller, note_id, lambda row: _apply(row, draft), address)
        )

    async def sign(self, caller: Identity, note_id: str, address: str | None = None) -> NoteView:
        """Sign a draft: freeze it, sign its canonical form, and queue it for the record store."""
        row = await self._sign(caller, note_id, _signed_content, address)
        return (await self._views([row]))[0]

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
        async with audited(self._audit, caller, "amend", self.kind, note_id, address) as scope:
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
            row = ConsultationNote(
                consult_id=original.consult_id,
                hospital_id=original.hospital_id,
                patient_sub=original.patient_sub,
                patient_name=original.patient_name,
                version=original.version + 1,
                amends_id=original.id,
                amendment_reason=reason,
                **{part: getattr(original, part) for part in SOAP},
                diagnoses=list(original.diagnoses),
            )
            _apply(row, draft)
            await self._insert_draft(row, caller)
            scope.detail = {"amendment_id": row.id}
        await self._changed(row, "amended")
        return NoteView(row)

    async def document(
        self, caller: Identity, consult_id: str, address: str | None = None
    ) -> dict[str, Any]:
        """The FHIR document (a ``Bundle``) of the consult's latest signed note, with the
        prescriptions signed before it (in their state now), for whoever may read the note;
        audited.

        :raises NoteNotFound: when the caller may read no signed note of the consult.
        """
        async with audited(self._audit, caller, "view", "document", consult_id, address) as scope:
            consult = await load_consult(self._database, consult_id)
            scope.about(consult.id, consult.hospital)
            async with self._database.sessions() as session:
                notes = await session.scalars(
                    select(ConsultationNote)
                    .where(
                        ConsultationNote.consult_id == consult_id,
                        ConsultationNote.status != DRAFT,
                    )
                    .order_by(ConsultationNote.signed_at.desc())
                )
                note = next((row for row in notes if self._may_read(caller, consult, row)), None)
                if note is None:
                    raise NoteNotFound("No signed note of this consult")
                prescriptions = await _signed_prescriptions_before(session, note)
            scope.detail = {"note_id": note.id, "prescriptions": [p.id for p in prescriptions]}
        return fhir.document_bundle(
            record_of(note), [(record_of(row), row.status) for row in prescriptions]
        )

    async def _record_extras(self, session: AsyncSession, row: ConsultationNote) -> dict[str, Any]:
        """A note's document carries the consult's prescriptions signed before it (and their
        state then)."""
        prescriptions = await _signed_prescriptions_before(session, row)
        return {"prescriptions": [[record_of(p), p.status] for p in prescriptions]}

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
