"""The OpenAPI description of the clinical routes (merged into ``/api/openapi.json``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from signaling.clinical_schemas import (
    AllergiesIn,
    AllergiesOut,
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

CLINICAL_SCHEMAS: tuple[type[BaseModel], ...] = (
    NoteIn,
    AmendmentIn,
    NoteOut,
    PrescriptionIn,
    PrescriptionSignIn,
    ReviewIn,
    PrescriptionOut,
    ConsultClinicalOut,
    AllergiesIn,
    AllergiesOut,
    PublicKeyOut,
    OutboxEntryOut,
)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str, description: str, array: bool = False) -> dict[str, Any]:
    schema = {"type": "array", "items": _ref(name)} if array else _ref(name)
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body(name: str, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": _ref(name)}}}


def _problems(*statuses: int) -> dict[str, Any]:
    return {str(s): _json("ProblemOut", "refused, with a stable error code") for s in statuses}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _op(
    summary: str,
    param: str | None,
    ok: dict[str, Any],
    problems: tuple[int, ...],
    body: dict[str, Any] | None = None,
    status: str = "200",
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "tags": ["clinical"],
        "responses": {status: ok, **_problems(*problems)},
    }
    if param:
        operation["parameters"] = [_path(param)]
    if body:
        operation["requestBody"] = body
    return operation


def clinical_paths() -> dict[str, Any]:
    """The paths of every clinical route."""
    note = _json("NoteOut", "the note")
    prescription = _json("PrescriptionOut", "the prescription")
    return {
        "/api/consults/{consult_id}/notes": {
            "post": _op(
                "Start a draft consultation note (the consult's doctors)",
                "consult_id",
                note,
                (401, 403, 404, 422),
                _body("NoteIn"),
                "201",
            )
        },
        "/api/notes/{note_id}": {
            "get": _op(
                "A note (the consult's doctors; its patient once signed)",
                "note_id",
                note,
                (401, 404),
            ),
            "patch": _op(
                "Save a draft note (its author)",
                "note_id",
                note,
                (401, 403, 404, 409, 422),
                _body("NoteIn"),
            ),
        },
        "/api/notes/{note_id}/sign": {
            "post": _op(
                "Sign a draft note: immutable, signed (Ed25519), queued for the record store",
                "note_id",
                note,
                (401, 403, 404, 409, 422),
            )
        },
        "/api/notes/{note_id}/amendments": {
            "post": _op(
                "Start an amendment of a signed note: a new draft version with a reason",
                "note_id",
                note,
                (401, 403, 404, 409, 422),
                _body("AmendmentIn"),
                "201",
            )
        },
        "/api/consults/{consult_id}/prescriptions": {
            "post": _op(
                "Start a draft e-prescription (the consult's doctors)",
                "consult_id",
                prescription,
                (401, 403, 404, 422),
                _body("PrescriptionIn"),
                "201",
            )
        },
        "/api/prescriptions/{prescription_id}": {
            "get": _op(
                "A prescription (doctors of the consult, pharmacists of the hospital, its patient)",
                "prescription_id",
                prescription,
                (401, 404),
            ),
            "patch": _op(
                "Save a draft prescription's items (its prescriber)",
                "prescription_id",
                prescription,
                (401, 403, 404, 409, 422),
                _body("PrescriptionIn"),
            ),
        },
        "/api/prescriptions/{prescription_id}/sign": {
            "post": _op(
                "Check allergies and duplicates, then sign; findings need override.reason "
                "(409 safety_check_failed lists them)",
                "prescription_id",
                prescription,
                (401, 403, 404, 409, 422),
                _body("PrescriptionSignIn", required=False),
            )
        },
        "/api/prescriptions/{prescription_id}/review": {
            "post": _op(
                "A pharmacist of the hospital approves or rejects (with a reason)",
                "prescription_id",
                prescription,
                (401, 403, 404, 409, 422),
                _body("ReviewIn"),
            )
        },
        "/api/consults/{consult_id}/clinical": {
            "get": _op(
                "The consult's notes and prescriptions the caller may read",
                "consult_id",
                _json("ConsultClinicalOut", "notes and prescriptions"),
                (401, 404),
            )
        },
        "/api/pharmacy/queue": {
            "get": _op(
                "Signed prescriptions awaiting review at the pharmacist's hospital",
                None,
                _json("PrescriptionOut", "oldest first", array=True),
                (401, 403),
            )
        },
        "/api/patients/{patient_sub}/allergies": {
            "put": _op(
                "Record a patient's allergies (doctor, coordinator or hospital system)",
                "patient_sub",
                _json("AllergiesOut", "the recorded allergies"),
                (401, 403, 422),
                _body("AllergiesIn"),
            ),
            "get": _op(
                "A patient's recorded allergies (hospital staff, or the patient)",
                "patient_sub",
                _json("AllergiesOut", "the recorded allergies"),
                (401, 403),
            ),
        },
        "/api/clinical/public-key": {
            "get": {
                **_op(
                    "The Ed25519 public key that verifies signed documents",
                    None,
                    _json("PublicKeyOut", "the key and the canonical form"),
                    (),
                ),
                "security": [],
            }
        },
        "/api/outbox": {
            "get": _op(
                "Outbox entries of the admin's hospital (?status=pending|delivered|failed)",
                None,
                _json("OutboxEntryOut", "newest first", array=True),
                (401, 403),
            )
        },
        "/api/outbox/{entry_id}/retry": {
            "post": _op(
                "Retry a failed outbox entry (admin)",
                "entry_id",
                _json("OutboxEntryOut", "the entry, pending again"),
                (401, 403, 404, 409),
            )
        },
    }
