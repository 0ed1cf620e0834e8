"""REST routes of the pharmacist's work: the review queue and the review of a prescription."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import Field

from rooms.identity import Identity
from signaling.addresses import client_address
from signaling.api.declare import ApiRoutes
from signaling.api.prescriptions import PrescriptionOut, prescription_out
from signaling.context import services
from signaling.schemas import Strict


class ReviewIn(Strict):
    """``POST /api/prescriptions/{id}/review``: the pharmacist's decision; a rejection needs a
    reason."""

    decision: Literal["approve", "reject"]
    reason: str | None = Field(default=None, max_length=1000)


routes = ApiRoutes("pharmacy")


@routes.get(
    "/api/pharmacy/queue",
    response=list[PrescriptionOut],
    description="oldest first",
    problems=(403,),
)
async def pharmacy_queue(request: web.Request, identity: Identity) -> list[PrescriptionOut]:
    """Signed prescriptions of the pharmacist's hospital awaiting review, oldest first."""
    views = await services(request).clinical.prescriptions.queue(identity, client_address(request))
    return [prescription_out(view) for view in views]


@routes.post(
    "/api/prescriptions/{prescription_id}/review",
    body=ReviewIn,
    response=PrescriptionOut,
    description="the reviewed prescription",
    problems=(403, 404, 409),
)
async def review_prescription(
    request: web.Request, identity: Identity, prescription_id: str, body: ReviewIn
) -> PrescriptionOut:
    """A pharmacist of the hospital approves or rejects (with a reason) a signed prescription."""
    prescriptions = services(request).clinical.prescriptions
    approve = body.decision == "approve"
    view = await prescriptions.review(
        identity, prescription_id, approve, body.reason, client_address(request)
    )
    return prescription_out(view)
