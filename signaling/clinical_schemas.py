"""Payload schemas of the clinical REST routes: notes, prescriptions, reviews, allergies."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Icd10Code = Field(pattern=r"^[A-Z][0-9]{2}(\.[0-9A-Za-z]{1,7})?$", max_length=12)
DrugCode = Field(pattern=r"^[A-Za-z0-9.\-]{1,64}$")
SoapText = Field(default=None, max_length=20000)
Reason = Field(min_length=1, max_length=1000)

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


class Strict(BaseModel):
    """A payload that refuses unknown fields."""

    model_config = ConfigDict(extra="forbid")


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


class ReviewIn(Strict):
    """``POST /api/prescriptions/{id}/review``: the pharmacist's decision; a rejection needs a
    reason."""

    decision: Literal["approve", "reject"]
    reason: str | None = Field(default=None, max_length=1000)


class AllergyIn(Strict):
    """A recorded allergy: the substance (ATC code or class, and name) and the reaction."""

    substance_code: str = DrugCode
    substance_name: str = Field(min_length=1, max_length=200)
    reaction: str | None = Field(default=None, max_length=200)


class AllergiesIn(Strict):
    """``PUT /api/patients/{sub}/allergies``: the patient's complete list."""

    allergies: list[AllergyIn] = Field(max_length=100)


class PersonOut(BaseModel):
    """A person named in a document."""

    sub: str
    name: str


class SignatureOut(BaseModel):
    """An Ed25519 signature over the document's canonical JSON (base64)."""

    algorithm: str
    key_id: str
    value: str


class DeliveryOut(BaseModel):
    """Where the delivery to the hospital record store stands."""

    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_error: str | None
    delivered_at: str | None


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


class ConsultClinicalOut(BaseModel):
    """A consult's notes and prescriptions, as far as the caller may read them."""

    notes: list[NoteOut]
    prescriptions: list[PrescriptionOut]


class AllergiesOut(BaseModel):
    """A patient's recorded allergies."""

    patient: str
    allergies: list[AllergyIn]


class PublicKeyOut(BaseModel):
    """The server's clinical signing key."""

    algorithm: str
    key_id: str
    public_key_pem: str
    canonical_form: str


class OutboxEntryOut(BaseModel):
    """An outbox entry as an admin sees it (never the clinical payload)."""

    id: str
    idempotency_key: str
    kind: str
    document_id: str
    consult_id: str
    hospital: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: str
    last_error: str | None
    created_at: str
    delivered_at: str | None
