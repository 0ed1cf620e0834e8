"""REST routes of consultation notes: draft, save, sign, amend, read; and their schemas."""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from clinical.notes import Diagnosis, NoteDraft, NoteView
from rooms.identity import Identity
from signaling.addresses import client_address
from signaling.api.declare import ApiRoutes
from signaling.api.documents import DeliveryOut, PersonOut, Reason, SignatureOut
from signaling.context import services
from signaling.schemas import Strict

Icd10Code = Field(pattern=r"^[A-Z][0-9]{2}(\.[0-9A-Za-z]{1,7})?$", max_length=12)
SoapText = Field(default=None, max_length=20000)


class DiagnosisIn(Strict):
    """A diagnosis: an ICD-10 code (e.g. ``I10``, ``E11.9``) and its text."""

    code: str = Icd10Code
    text: str = Field(min_length=1, max_length=200)


class NoteIn(Strict):
    """``POST /api/consults/{id}/notes`` and ``PATCH /api/notes/{id}``: SOAP parts and diagnoses.

    Parts left out are unchanged; a draft may be incomplete, signing needs assessment, plan and
    one diagnosis.
    """

    subjective: str | None = SoapText
    objective: str | None = SoapText
    assessment: str | None = SoapText
    plan: str | None = SoapText
    diagnoses: list[DiagnosisIn] | None = Field(default=None, max_length=20)


class AmendmentIn(NoteIn):
    """``POST /api/notes/{id}/amendments``: why, and the parts that change."""

    reason: str = Reason


class NoteOut(BaseModel):
    """A consultation note (a draft, or a signed version)."""

    id: str
    consult_id: str
    hospital: str
    patient: PersonOut
    author: PersonOut
    version: int
    amends: str | None
    amendment_reason: str | None
    amended_by: list[str]
    status: Literal["draft", "signed"]
    subjective: str
    objective: str
    assessment: str
    plan: str
    diagnoses: list[DiagnosisIn]
    created_at: str
    updated_at: str
    signed_at: str | None
    signature: SignatureOut | None
    signed_document: dict[str, Any] | None
    delivery: DeliveryOut | None


routes = ApiRoutes("notes")


def note_out(view: NoteView) -> NoteOut:
    """The REST form of a note."""
    return NoteOut.model_validate(view.as_dict())


def _draft(body: NoteIn) -> NoteDraft:
    diagnoses = (
        None if body.diagnoses is None else [Diagnosis(d.code, d.text) for d in body.diagnoses]
    )
    return NoteDraft(body.subjective, body.objective, body.assessment, body.plan, diagnoses)


@routes.post(
    "/api/consults/{consult_id}/notes",
    body=NoteIn,
    response=NoteOut,
    status=201,
    description="the note",
    problems=(403, 404),
)
async def create_note(
    request: web.Request, identity: Identity, consult_id: str, body: NoteIn
) -> NoteOut:
    """Start a draft consultation note (the consult's doctors)."""
    notes = services(request).clinical.notes
    return note_out(await notes.create(identity, consult_id, _draft(body), client_address(request)))


@routes.get("/api/notes/{note_id}", response=NoteOut, description="the note", problems=(404,))
async def read_note(request: web.Request, identity: Identity, note_id: str) -> NoteOut:
    """A note: for the consult's doctors; for its patient once signed."""
    notes = services(request).clinical.notes
    return note_out(await notes.get(identity, note_id, client_address(request)))


@routes.patch(
    "/api/notes/{note_id}",
    body=NoteIn,
    response=NoteOut,
    description="the note",
    problems=(403, 404, 409),
)
async def update_note(
    request: web.Request, identity: Identity, note_id: str, body: NoteIn
) -> NoteOut:
    """Save a draft note (its author; autosave as the doctor types)."""
    notes = services(request).clinical.notes
    return note_out(await notes.update(identity, note_id, _draft(body), client_address(request)))


@routes.post(
    "/api/notes/{note_id}/sign",
    response=NoteOut,
    description="the signed note",
    problems=(403, 404, 409, 422),
)
async def sign_note(request: web.Request, identity: Identity, note_id: str) -> NoteOut:
    """Sign a draft note: immutable, signed (Ed25519), queued for the record store."""
    notes = services(request).clinical.notes
    return note_out(await notes.sign(identity, note_id, client_address(request)))


@routes.post(
    "/api/notes/{note_id}/amendments",
    body=AmendmentIn,
    response=NoteOut,
    status=201,
    description="the new draft version",
    problems=(403, 404, 409),
)
async def amend_note(
    request: web.Request, identity: Identity, note_id: str, body: AmendmentIn
) -> NoteOut:
    """Start an amendment of a signed note: a new draft version with a reason."""
    notes = services(request).clinical.notes
    view = await notes.amend(identity, note_id, _draft(body), body.reason, client_address(request))
    return note_out(view)
