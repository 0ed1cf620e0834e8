"""REST routes of e-prescriptions: draft, save, check and sign, read; and their schemas."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from clinical.prescriptions import PrescriptionView
from rooms.identity import Identity
from signaling.addresses import client_address
from signaling.api.declare import ApiRoutes
from signaling.api.documents import DeliveryOut, PersonOut, Reason, SignatureOut
from signaling.context import services
from signaling.schemas import Strict

DrugCode = Field(pattern=r"^[A-Za-z0-9.\-]{1,64}$")

Route = Literal[
    "oral",
    "sublingual",
    "topical",
    "inhaled",
    "intravenous",
    "intramuscular",
    "subcutaneous",
    "rectal",
    "ophthalmic",
    "nasal",
    "transdermal",
]
Frequency = Literal["QD", "BID", "TID", "QID", "Q4H", "Q6H", "Q8H", "Q12H", "QHS", "QW", "PRN"]


class DrugIn(Strict):
    """A drug: its code (ATC or the formulary's) and name."""

    code: str = DrugCode
    name: str = Field(min_length=1, max_length=200)


class PrescriptionItemIn(Strict):
    """One item of a prescription. A draft may leave fields out; signing needs them all."""

    drug: DrugIn | None = None
    strength: str | None = Field(default=None, min_length=1, max_length=64)
    dose: Decimal | None = Field(default=None, gt=0, max_digits=8, decimal_places=3)
    dose_unit: str | None = Field(default=None, min_length=1, max_length=32)
    route: Route | None = None
    frequency: Frequency | None = None
    duration_days: int | None = Field(default=None, ge=1, le=365)
    quantity: int | None = Field(default=None, ge=1, le=1000)
    refills: int | None = Field(default=None, ge=0, le=12)
    instructions: str | None = Field(default=None, max_length=500)

    def as_item(self) -> dict[str, Any]:
        """The item as stored and signed: decimals as strings, never floats."""
        item = self.model_dump(mode="json")
        if self.dose is not None:
            item["dose"] = format(self.dose.normalize(), "f")
        return item


class PrescriptionIn(Strict):
    """``POST /api/consults/{id}/prescriptions`` and ``PATCH /api/prescriptions/{id}``."""

    items: list[PrescriptionItemIn] = Field(default_factory=list, max_length=20)


class OverrideIn(Strict):
    """Why the doctor signs despite the safety findings."""

    reason: str = Reason


class PrescriptionSignIn(Strict):
    """``POST /api/prescriptions/{id}/sign``: optionally an override of the safety findings."""

    override: OverrideIn | None = None


class SafetyFindingOut(BaseModel):
    """An allergy or duplicate-drug finding."""

    kind: Literal["allergy", "duplicate"]
    item: int
    drug_code: str
    message: str
    related: str


class SafetyOut(BaseModel):
    """The findings at signing and the override reason, if the doctor overrode them."""

    findings: list[SafetyFindingOut]
    override_reason: str | None


class ReviewOut(BaseModel):
    """The pharmacist's review."""

    outcome: Literal["approved", "rejected"]
    reason: str | None
    pharmacist: PersonOut
    reviewed_at: str


class PrescriptionOut(BaseModel):
    """An e-prescription."""

    id: str
    consult_id: str
    hospital: str
    patient: PersonOut
    prescriber: PersonOut
    status: Literal["draft", "signed", "approved", "rejected"]
    items: list[dict[str, Any]]
    safety: SafetyOut
    created_at: str
    updated_at: str
    signed_at: str | None
    signature: SignatureOut | None
    signed_document: dict[str, Any] | None
    review: ReviewOut | None
    delivery: DeliveryOut | None


routes = ApiRoutes("prescriptions")


def prescription_out(view: PrescriptionView) -> PrescriptionOut:
    """The REST form of a prescription."""
    return PrescriptionOut.model_validate(view.as_dict())


@routes.post(
    "/api/consults/{consult_id}/prescriptions",
    body=PrescriptionIn,
    response=PrescriptionOut,
    status=201,
    description="the prescription",
    problems=(403, 404),
)
async def create_prescription(
    request: web.Request, identity: Identity, consult_id: str, body: PrescriptionIn
) -> PrescriptionOut:
    """Start a draft e-prescription (the consult's doctors)."""
    prescriptions = services(request).clinical.prescriptions
    items = [item.as_item() for item in body.items]
    return prescription_out(
        await prescriptions.create(identity, consult_id, items, client_address(request))
    )


@routes.get(
    "/api/prescriptions/{prescription_id}",
    response=PrescriptionOut,
    description="the prescription",
    problems=(404,),
)
async def read_prescription(
    request: web.Request, identity: Identity, prescription_id: str
) -> PrescriptionOut:
    """A prescription: doctors of the consult, pharmacists of the hospital, its patient."""
    prescriptions = services(request).clinical.prescriptions
    return prescription_out(
        await prescriptions.get(identity, prescription_id, client_address(request))
    )


@routes.patch(
    "/api/prescriptions/{prescription_id}",
    body=PrescriptionIn,
    response=PrescriptionOut,
    description="the prescription",
    problems=(403, 404, 409),
)
async def update_prescription(
    request: web.Request, identity: Identity, prescription_id: str, body: PrescriptionIn
) -> PrescriptionOut:
    """Save a draft prescription's items (its prescriber)."""
    prescriptions = services(request).clinical.prescriptions
    items = [item.as_item() for item in body.items]
    return prescription_out(
        await prescriptions.update(identity, prescription_id, items, client_address(request))
    )


@routes.post(
    "/api/prescriptions/{prescription_id}/sign",
    body=PrescriptionSignIn,
    body_required=False,
    response=PrescriptionOut,
    description="the signed prescription",
    problems=(403, 404, 409),
)
async def sign_prescription(
    request: web.Request, identity: Identity, prescription_id: str, body: PrescriptionSignIn
) -> PrescriptionOut:
    """Check allergies and duplicates, then sign; findings refuse it (409) unless overridden.

    The refusal, ``safety_check_failed``, lists the findings; ``override: {reason}`` signs anyway.
    """
    prescriptions = services(request).clinical.prescriptions
    reason = body.override.reason if body.override else None
    return prescription_out(
        await prescriptions.sign(identity, prescription_id, reason, client_address(request))
    )
