"""REST routes of the clinical record: notes, prescriptions, review, allergies, the outbox."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from clinical.access import audited
from clinical.notes import Diagnosis, NoteDraft, NoteView
from clinical.prescriptions import PrescriptionView
from clinical.safety import Allergy
from clinical.services import ClinicalServices
from outbox.queue import entry_as_dict
from signaling.api.bearer import caller
from signaling.clinical_schemas import (
    AllergiesIn,
    AllergiesOut,
    AllergyIn,
    AmendmentIn,
    ConsultClinicalOut,
    NoteIn,
    NoteOut,
    OutboxEntryOut,
    PrescriptionIn,
    PrescriptionOut,
    PrescriptionSignIn,
    PublicKeyOut,
    ReviewIn,
)
from signaling.context import services
from signaling.errors import json_body

routes = web.RouteTableDef()

CANONICAL_FORM = (
    "JSON of signed_document, keys sorted, no whitespace (separators ',' and ':'), UTF-8, "
    "non-ASCII unescaped; decimals are strings. Ed25519 over those bytes; signature base64."
)


def _clinical(request: web.Request) -> ClinicalServices:
    return services(request).clinical


def _json(model: BaseModel, status: int = 200) -> web.Response:
    return web.json_response(text=model.model_dump_json(), status=status)


def _note(view: NoteView, status: int = 200) -> web.Response:
    return _json(NoteOut.model_validate(view.as_dict()), status)


def _prescription(view: PrescriptionView, status: int = 200) -> web.Response:
    return _json(PrescriptionOut.model_validate(view.as_dict()), status)


def _draft(body: NoteIn) -> NoteDraft:
    diagnoses = (
        None if body.diagnoses is None else [Diagnosis(d.code, d.text) for d in body.diagnoses]
    )
    return NoteDraft(body.subjective, body.objective, body.assessment, body.plan, diagnoses)


async def _body(request: web.Request, model: type[BaseModel]) -> BaseModel:
    if not request.can_read_body:
        return model.model_validate({})
    return model.model_validate(await json_body(request))


@routes.post("/api/consults/{consult_id}/notes")
async def create_note(request: web.Request) -> web.Response:
    """Start a draft consultation note (the consult's doctors)."""
    identity = caller(request)
    body = NoteIn.model_validate(await json_body(request))
    view = await _clinical(request).notes.create(
        identity, request.match_info["consult_id"], _draft(body), request.remote
    )
    return _note(view, 201)


@routes.get("/api/notes/{note_id}")
async def read_note(request: web.Request) -> web.Response:
    """A note: for the consult's doctors; for its patient once signed."""
    view = await _clinical(request).notes.get(
        caller(request), request.match_info["note_id"], request.remote
    )
    return _note(view)


@routes.patch("/api/notes/{note_id}")
async def update_note(request: web.Request) -> web.Response:
    """Save a draft note (autosave as the doctor types)."""
    identity = caller(request)
    body = NoteIn.model_validate(await json_body(request))
    view = await _clinical(request).notes.update(
        identity, request.match_info["note_id"], _draft(body), request.remote
    )
    return _note(view)


@routes.post("/api/notes/{note_id}/sign")
async def sign_note(request: web.Request) -> web.Response:
    """Sign a draft note: it becomes immutable and goes to the record store."""
    view = await _clinical(request).notes.sign(
        caller(request), request.match_info["note_id"], request.remote
    )
    return _note(view)


@routes.post("/api/notes/{note_id}/amendments")
async def amend_note(request: web.Request) -> web.Response:
    """Start an amendment of a signed note: a new draft version with a reason."""
    identity = caller(request)
    body = AmendmentIn.model_validate(await json_body(request))
    view = await _clinical(request).notes.amend(
        identity, request.match_info["note_id"], _draft(body), body.reason, request.remote
    )
    return _note(view, 201)


@routes.post("/api/consults/{consult_id}/prescriptions")
async def create_prescription(request: web.Request) -> web.Response:
    """Start a draft e-prescription (the consult's doctors)."""
    identity = caller(request)
    body = PrescriptionIn.model_validate(await json_body(request))
    view = await _clinical(request).prescriptions.create(
        identity,
        request.match_info["consult_id"],
        [item.as_item() for item in body.items],
        request.remote,
    )
    return _prescription(view, 201)


@routes.get("/api/prescriptions/{prescription_id}")
async def read_prescription(request: web.Request) -> web.Response:
    """A prescription: doctors of the consult, pharmacists of the hospital, its patient."""
    view = await _clinical(request).prescriptions.get(
        caller(request), request.match_info["prescription_id"], request.remote
    )
    return _prescription(view)


@routes.patch("/api/prescriptions/{prescription_id}")
async def update_prescription(request: web.Request) -> web.Response:
    """Save a draft prescription's items."""
    identity = caller(request)
    body = PrescriptionIn.model_validate(await json_body(request))
    view = await _clinical(request).prescriptions.update(
        identity,
        request.match_info["prescription_id"],
        [item.as_item() for item in body.items],
        request.remote,
    )
    return _prescription(view)


@routes.post("/api/prescriptions/{prescription_id}/sign")
async def sign_prescription(request: web.Request) -> web.Response:
    """Check and sign a prescription; safety findings need ``override: {reason}``."""
    identity = caller(request)
    body = await _body(request, PrescriptionSignIn)
    assert isinstance(body, PrescriptionSignIn)
    view = await _clinical(request).prescriptions.sign(
        identity,
        request.match_info["prescription_id"],
        body.override.reason if body.override else None,
        request.remote,
    )
    return _prescription(view)


@routes.post("/api/prescriptions/{prescription_id}/review")
async def review_prescription(request: web.Request) -> web.Response:
    """A pharmacist approves or rejects (with a reason) a signed prescription."""
    identity = caller(request)
    body = ReviewIn.model_validate(await json_body(request))
    view = await _clinical(request).prescriptions.review(
        identity,
        request.match_info["prescription_id"],
        body.decision == "approve",
        body.reason,
        request.remote,
    )
    return _prescription(view)


@routes.get("/api/consults/{consult_id}/clinical")
async def consult_clinical(request: web.Request) -> web.Response:
    """The consult's notes and prescriptions that the caller may read."""
    identity = caller(request)
    clinical = _clinical(request)
    consult_id = request.match_info["consult_id"]
    async with audited(
        clinical.audit, identity, "list", "consult_clinical", consult_id, request.remote
    ) as scope:
        consult = await services(request).consults.get(identity, consult_id)
        scope.about(consult.id, consult.hospital)
        notes = await clinical.notes.for_consult(identity, consult_id)
        prescriptions = await clinical.prescriptions.for_consult(identity, consult_id)
        scope.detail = {
            "notes": [n.row.id for n in notes],
            "prescriptions": [p.row.id for p in prescriptions],
        }
    out = ConsultClinicalOut(
        notes=[NoteOut.model_validate(n.as_dict()) for n in notes],
        prescriptions=[PrescriptionOut.model_validate(p.as_dict()) for p in prescriptions],
    )
    return _json(out)


@routes.get("/api/pharmacy/queue")
async def pharmacy_queue(request: web.Request) -> web.Response:
    """Signed prescriptions of the pharmacist's hospital awaiting review, oldest first."""
    views = await _clinical(request).prescriptions.queue(caller(request), request.remote)
    return web.json_response(
        text="["
        + ",".join(PrescriptionOut.model_validate(v.as_dict()).model_dump_json() for v in views)
        + "]"
    )


@routes.put("/api/patients/{patient_sub}/allergies")
async def record_allergies(request: web.Request) -> web.Response:
    """Record a patient's complete list of allergies at the caller's hospital."""
    identity = caller(request)
    body = AllergiesIn.model_validate(await json_body(request))
    patient = request.match_info["patient_sub"]
    allergies = await _clinical(request).allergies.replace(
        identity,
        patient,
        [Allergy(a.substance_code, a.substance_name, a.reaction) for a in body.allergies],
        request.remote,
    )
    return _json(_allergies_out(patient, allergies))


@routes.get("/api/patients/{patient_sub}/allergies")
async def read_allergies(request: web.Request) -> web.Response:
    """A patient's recorded allergies at the caller's hospital."""
    patient = request.match_info["patient_sub"]
    allergies = await _clinical(request).allergies.read(caller(request), patient, request.remote)
    return _json(_allergies_out(patient, allergies))


def _allergies_out(patient: str, allergies: list[Allergy]) -> AllergiesOut:
    return AllergiesOut(
        patient=patient,
        allergies=[_allergy_in(allergy) for allergy in allergies],
    )


def _allergy_in(allergy: Allergy) -> AllergyIn:
    return AllergyIn(
        substance_code=allergy.substance_code,
        substance_name=allergy.substance_name,
        reaction=allergy.reaction,
    )


@routes.get("/api/clinical/public-key")
async def public_key(request: web.Request) -> web.Response:
    """The public key that verifies every signed note and prescription (no token needed)."""
    signer = _clinical(request).signer
    return _json(
        PublicKeyOut(
            algorithm="Ed25519",
            key_id=signer.key_id,
            public_key_pem=signer.public_key_pem(),
            canonical_form=CANONICAL_FORM,
        )
    )


@routes.get("/api/outbox")
async def list_outbox(request: web.Request) -> web.Response:
    """Outbox entries of the admin's hospital (``?status=failed`` to see those needing help)."""
    identity = caller(request)
    clinical = _clinical(request)
    status = request.query.get("status")
    async with audited(
        clinical.audit, identity, "list", "outbox", identity.hospital, request.remote
    ) as scope:
        scope.hospital_id = identity.hospital
        entries = await clinical.outbox.entries(identity, status)
    body = [OutboxEntryOut.model_validate(entry_as_dict(e)).model_dump() for e in entries]
    return web.json_response(body)


@routes.post("/api/outbox/{entry_id}/retry")
async def retry_outbox_entry(request: web.Request) -> web.Response:
    """Put a failed entry back in the delivery queue (admin)."""
    identity = caller(request)
    clinical = _clinical(request)
    entry_id = request.match_info["entry_id"]
    async with audited(
        clinical.audit, identity, "retry", "outbox", entry_id, request.remote
    ) as scope:
        entry = await clinical.outbox.retry(identity, entry_id)
        scope.about(entry.consult_id, entry.hospital_id)
    return _json(OutboxEntryOut.model_validate(entry_as_dict(entry)))
