"""REST routes of a patient's recorded allergies; and their schemas."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from clinical.safety import Allergy
from rooms.identity import Identity
from signaling.addresses import client_address
from signaling.api.declare import ApiRoutes
from signaling.api.prescriptions import DrugCode
from signaling.context import services
from signaling.schemas import Strict


class AllergyIn(Strict):
    """A recorded allergy: the substance (ATC code or class, and name) and the reaction."""

    substance_code: str = DrugCode
    substance_name: str = Field(min_length=1, max_length=200)
    reaction: str | None = Field(default=None, max_length=200)


class AllergiesIn(Strict):
    """``PUT /api/patients/{sub}/allergies``: the patient's complete list."""

    allergies: list[AllergyIn] = Field(max_length=100)


class AllergiesOut(BaseModel):
    """A patient's recorded allergies."""

    patient: str
    allergies: list[AllergyIn]


routes = ApiRoutes("allergies")


def _allergies_out(patient: str, allergies: list[Allergy]) -> AllergiesOut:
    return AllergiesOut(
        patient=patient,
        allergies=[
            AllergyIn(
                substance_code=a.substance_code,
                substance_name=a.substance_name,
                reaction=a.reaction,
            )
            for a in allergies
        ],
    )


@routes.put(
    "/api/patients/{patient_sub}/allergies",
    body=AllergiesIn,
    response=AllergiesOut,
    description="the recorded allergies",
    problems=(403,),
)
async def record_allergies(
    request: web.Request, identity: Identity, patient_sub: str, body: AllergiesIn
) -> AllergiesOut:
    """Record a patient's complete list of allergies (doctor, coordinator or hospital system)."""
    allergies = [Allergy(a.substance_code, a.substance_name, a.reaction) for a in body.allergies]
    recorded = await services(request).clinical.allergies.replace(
        identity, patient_sub, allergies, client_address(request)
    )
    return _allergies_out(patient_sub, recorded)


@routes.get(
    "/api/patients/{patient_sub}/allergies",
    response=AllergiesOut,
    description="the recorded allergies",
    problems=(403,),
)
async def read_allergies(
    request: web.Request, identity: Identity, patient_sub: str
) -> AllergiesOut:
    """A patient's recorded allergies at the caller's hospital (hospital staff, or the patient)."""
    recorded = await services(request).clinical.allergies.read(
        identity, patient_sub, client_address(request)
    )
    return _allergies_out(patient_sub, recorded)
