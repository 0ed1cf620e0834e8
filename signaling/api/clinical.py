"""REST routes of a consult's clinical record: its notes and prescriptions in one answer, and
the FHIR document of its latest signed note."""

from __future__ import annotations

import json

from aiohttp import web
from pydantic import BaseModel

from clinical.access import audited
from rooms.identity import Identity
from signaling.addresses import client_address
from signaling.api.declare import ApiRoutes
from signaling.api.notes import NoteOut, note_out
from signaling.api.prescriptions import PrescriptionOut, prescription_out
from signaling.context import services


class ConsultClinicalOut(BaseModel):
    """A consult's notes and prescriptions, as far as the caller may read them."""

    notes: list[NoteOut]
    prescriptions: list[PrescriptionOut]


routes = ApiRoutes("clinical")


@routes.get(
    "/api/consults/{consult_id}/clinical",
    response=ConsultClinicalOut,
    description="notes and prescriptions",
    problems=(404,),
)
async def consult_clinical(
    request: web.Request, identity: Identity, consult_id: str
) -> ConsultClinicalOut:
    """The consult's notes and prescriptions that the caller may read."""
    svc = services(request)
    clinical = svc.clinical
    async with audited(
        clinical.audit, identity, "list", "consult_clinical", consult_id, client_address(request)
    ) as scope:
        consult = await svc.consults.get(identity, consult_id)
        scope.about(consult.id, consult.hospital)
        notes = await clinical.notes.for_consult(identity, consult_id)
        prescriptions = await clinical.prescriptions.for_consult(identity, consult_id)
        scope.detail = {
            "notes": [n.row.id for n in notes],
            "prescriptions": [p.row.id for p in prescriptions],
        }
    return ConsultClinicalOut(
        notes=[note_out(n) for n in notes],
        prescriptions=[prescription_out(p) for p in prescriptions],
    )


@routes.get(
    "/api/consults/{consult_id}/document",
    description="the FHIR document (Bundle) of the latest signed note",
    problems=(404,),
)
async def consult_document(
    request: web.Request, identity: Identity, consult_id: str
) -> web.StreamResponse:
    """The latest signed note as a FHIR document Bundle, to those who may read the note."""
    bundle = await services(request).clinical.notes.document(
        identity, consult_id, client_address(request)
    )
    return web.Response(text=json.dumps(bundle), content_type="application/fhir+json")
