"""Consultation notes and e-prescriptions over REST, on SQLite and on the real PostgreSQL:
drafts, validation, signing, amendments, safety checks, review, and who may do what."""

from __future__ import annotations

import asyncio
from typing import Any

from clinical.signing import load_public_key, verify
from tests.integration.clinical_helpers import NOTE, item
from tests.integration.live import HOSPITAL, LiveServer, join_token


class Api:
    """The REST calls of one person."""

    def __init__(self, server: LiveServer, token: str) -> None:
        self.server = server
        self.headers = server.headers(token)

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.server.http.request(
            method, f"{self.server.url}{path}", json=body, headers=self.headers
        ) as response:
            return response.status, await response.json()


async def visit(live_server: LiveServer) -> tuple[dict[str, Any], Api, Api]:
    """A scheduled visit, with the doctor's and the patient's identity tokens (the patient's from
    the hospital's patient portal: a join link reads no clinical document)."""
    consult = await live_server.schedule_visit()
    doctor = Api(live_server, live_server.token_of(consult, "dr-wang"))
    patient = Api(live_server, live_server.token("pt-li", "patient", name="Li Hua"))
    return consult, doctor, patient


async def signed_note(doctor: Api, consult_id: str) -> dict[str, Any]:
    status, note = await doctor.call("POST", f"/api/consults/{consult_id}/notes", NOTE)
    assert status == 201, note
    status, signed = await doctor.call("POST", f"/api/notes/{note['id']}/sign")
    assert status == 200, signed
    return signed


async def audit_entries(live_server: LiveServer, resource_id: str) -> list[dict[str, Any]]:
    """The audit log's entries about one resource, oldest first (read from the database)."""
    from config.database import Database
    from rooms.audit import AuditLog

    database = Database(live_server.settings.effective_database_url)
    try:
        rows = await AuditLog(database).entries(resource_id=resource_id)
    finally:
        await database.dispose()
    return [
        {"actor": r.actor_sub, "action": r.action, "outcome": r.outcome} for r in reversed(rows)
    ]


async def test_doctor_drafts_signs_and_amends_a_note(live_server: LiveServer) -> None:
    consult, doctor, patient = await visit(live_server)
    status, draft = await doctor.call(
        "POST", f"/api/consults/{consult['id']}/notes", {"subjective": "Headache"}
    )
    assert status == 201 and draft["status"] == "draft"
    assert draft["patient"] == {"sub": "pt-li", "name": "Li Hua"}

    # Autosave as the doctor types; an incomplete draft cannot be signed.
    status, problem = await doctor.call("POST", f"/api/notes/{draft['id']}/sign")
    assert status == 422
    fields = {d["field"] for d in problem["error"]["details"]}
    assert fields == {"assessment", "plan", "diagnoses"}
    status, saved = await doctor.call("PATCH", f"/api/notes/{draft['id']}", NOTE)
    assert status == 200 and saved["assessment"] == NOTE["assessment"]

    status, signed = await doctor.call("POST", f"/api/notes/{draft['id']}/sign")
    assert status == 200 and signed["status"] == "signed"
    assert signed["delivery"]["status"] in ("pending", "delivered")

    # The signature verifies with the published key; a tampered copy does not.
    status, key = await patient.call("GET", "/api/clinical/public-key")
    assert status == 200 and key["key_id"] == signed["signature"]["key_id"]
    public_key = load_public_key(key["public_key_pem"])
    document = signed["signed_document"]
    assert verify(document, signed["signature"]["value"], public_key)
    tampered = {**document, "soap": {**document["soap"], "plan": "No treatment."}}
    assert not verify(tampered, signed["signature"]["value"], public_key)

    # Signed means immutable: the change is an amendment with a reason, linked to version 1.
    status, problem = await doctor.call("PATCH", f"/api/notes/{draft['id']}", {"plan": "x"})
    assert status == 409 and problem["error"]["code"] == "document_signed"
    status, problem = await doctor.call("POST", f"/api/notes/{draft['id']}/amendments", {})
    assert status == 422 and problem["error"]["details"][0]["field"] == "reason"
    status, amendment = await doctor.call(
        "POST",
        f"/api/notes/{draft['id']}/amendments",
        {"reason": "Dose plan corrected", "plan": "Start amlodipine 5 mg; review in one week."},
    )
    assert status == 201
    assert amendment["version"] == 2 and amendment["amends"] == draft["id"]
    assert amendment["assessment"] == NOTE["assessment"]  # copied from the amended version
    status, amended = await doctor.call("POST", f"/api/notes/{amendment['id']}/sign")
    assert status == 200 and amended["signed_document"]["amendment_reason"] == "Dose plan corrected"
    status, original = await doctor.call("GET", f"/api/notes/{draft['id']}")
    assert original["plan"] == NOTE["plan"] and original["amended_by"] == [amendment["id"]]

    # The patient reads their own signed notes, and only those.
    status, listing = await patient.call("GET", f"/api/consults/{consult['id']}/clinical")
    assert status == 200
    assert [n["version"] for n in listing["notes"]] == [1, 2]
    timeline = await doctor.call("GET", f"/api/consults/{consult['id']}/timeline")
    assert [e["kind"] for e in timeline[1]["events"]].count("note_signed") == 2


async def test_bad_input_gets_field_by_field_errors(live_server: LiveServer) -> None:
    consult, doctor, _ = await visit(live_server)
    status, problem = await doctor.call(
        "POST",
        f"/api/consults/{consult['id']}/notes",
        {"diagnoses": [{"code": "hypertension", "text": ""}], "mood": "fine"},
    )
    assert status == 422 and problem["error"]["code"] == "invalid_payload"
    fields = {d["field"] for d in problem["error"]["details"]}
    assert fields == {"diagnoses.0.code", "diagnoses.0.text", "mood"}

    bad = item(dose="-1", route="by mouth", frequency="sometimes", quantity=0, refills=40)
    bad["drug"] = {"code": "amlodipine 5mg!", "name": "Amlodipine"}
    status, problem = await doctor.call(
        "POST", f"/api/consults/{consult['id']}/prescriptions", {"items": [bad]}
    )
    assert status == 422
    fields = {d["field"] for d in problem["error"]["details"]}
    assert fields == {
        "items.0.drug.code",
        "items.0.dose",
        "items.0.route",
        "items.0.frequency",
        "items.0.quantity",
        "items.0.refills",
    }

    status, draft = await doctor.call(
        "POST", f"/api/consults/{consult['id']}/prescriptions", {"items": [{"strength": "5 mg"}]}
    )
    assert status == 201
    status, problem = await doctor.call("POST", f"/api/prescriptions/{draft['id']}/sign")
    assert status == 422
    assert "items.0.drug" in {d["field"] for d in problem["error"]["details"]}


async def test_allergy_and_duplicate_checks_block_signing_until_overridden(
    live_server: LiveServer,
) -> None:
    consult, doctor, _ = await visit(live_server)
    system = Api(live_server, live_server.token("his", "service"))
    status, recorded = await system.call(
        "PUT",
        "/api/patients/pt-li/allergies",
        {"allergies": [{"substance_code": "J01C", "substance_name": "Penicillins"}]},
    )
    assert status == 200 and recorded["allergies"][0]["substance_code"] == "J01C"

    amoxicillin = item("J01CA04", "Amoxicillin", strength="500 mg", frequency="TID")
    status, draft = await doctor.call(
        "POST",
        f"/api/consults/{consult['id']}/prescriptions",
        {"items": [amoxicillin, item(), item()]},
    )
    assert status == 201
    status, problem = await doctor.call("POST", f"/api/prescriptions/{draft['id']}/sign", {})
    assert status == 409 and problem["error"]["code"] == "safety_check_failed"
    kinds = sorted((f["kind"], f["item"]) for f in problem["error"]["details"])
    assert kinds == [("allergy", 0), ("duplicate", 2)]
    status, still = await doctor.call("GET", f"/api/prescriptions/{draft['id']}")
    assert still["status"] == "draft"

    status, signed = await doctor.call(
        "POST",
        f"/api/prescriptions/{draft['id']}/sign",
        {"override": {"reason": "Tolerated amoxicillin in 2024 under observation"}},
    )
    assert status == 200 and signed["status"] == "signed"
    assert signed["safety"]["override_reason"].startswith("Tolerated")
    assert len(signed["safety"]["findings"]) == 2
    assert signed["signed_document"]["safety"] == signed["safety"]
    entries = await audit_entries(live_server, draft["id"])
    assert [(e["action"], e["outcome"][:7]) for e in entries if e["action"] == "sign"] == [
        ("sign", "refused"),
        ("sign", "allowed"),
    ]

    # A second prescription of amlodipine duplicates the signed one.
    status, second = await doctor.call(
        "POST", f"/api/consults/{consult['id']}/prescriptions", {"items": [item()]}
    )
    status, problem = await doctor.call("POST", f"/api/prescriptions/{second['id']}/sign")
    assert status == 409
    assert problem["error"]["details"][0]["related"] == draft["id"]


async def test_pharmacist_reviews_and_patient_sees_the_approved_prescription(
    live_server: LiveServer,
) -> None:
    consult, doctor, patient = await visit(live_server)
    pharmacist = Api(live_server, live_server.token("ph-zhao", "pharmacist"))
    status, draft = await doctor.call(
        "POST", f"/api/consults/{consult['id']}/prescriptions", {"items": [item()]}
    )
    status, queue = await pharmacist.call("GET", "/api/pharmacy/queue")
    assert status == 200 and queue == []  # drafts are not for review
    status, problem = await pharmacist.call("GET", f"/api/prescriptions/{draft['id']}")
    assert status == 404

    status, _signed = await doctor.call("POST", f"/api/prescriptions/{draft['id']}/sign")
    assert status == 200
    status, queue = await pharmacist.call("GET", "/api/pharmacy/queue")
    assert [p["id"] for p in queue] == [draft["id"]]

    status, problem = await pharmacist.call(
        "POST", f"/api/prescriptions/{draft['id']}/review", {"decision": "reject"}
    )
    assert status == 422 and problem["error"]["details"][0]["field"] == "reason"
    status, reviewed = await pharmacist.call(
        "POST",
        f"/api/prescriptions/{draft['id']}/review",
        {"decision": "approve", "reason": "Dose appropriate"},
    )
    assert status == 200 and reviewed["status"] == "approved"
    assert reviewed["review"]["pharmacist"]["sub"] == "ph-zhao"
    status, problem = await pharmacist.call(
        "POST", f"/api/prescriptions/{draft['id']}/review", {"decision": "reject", "reason": "x"}
    )
    assert status == 409 and problem["error"]["code"] == "already_reviewed"

    status, seen_by_doctor = await doctor.call("GET", f"/api/prescriptions/{draft['id']}")
    assert seen_by_doctor["review"]["outcome"] == "approved"
    status, listing = await patient.call("GET", f"/api/consults/{consult['id']}/clinical")
    assert [(p["id"], p["status"]) for p in listing["prescriptions"]] == [(draft["id"], "approved")]
    status, queue = await pharmacist.call("GET", "/api/pharmacy/queue")
    assert queue == []


async def test_access_matrix(live_server: LiveServer) -> None:
    consult, doctor, patient = await visit(live_server)
    cid = consult["id"]
    pharmacist = Api(live_server, live_server.token("ph-zhao", "pharmacist"))
    other_doctor = Api(live_server, live_server.token("dr-sun", "doctor", hospital="h-west"))
    colleague = Api(live_server, live_server.token("dr-qian", "doctor"))  # not in the consult
    other_patient = Api(live_server, live_server.token("pt-zhou", "patient"))

    # A patient cannot write notes or prescriptions; their join link reads nothing clinical.
    status, problem = await patient.call("POST", f"/api/consults/{cid}/notes", NOTE)
    assert status == 403 and problem["error"]["code"] == "forbidden"
    link = Api(live_server, join_token(consult, "pt-li"))
    status, problem = await link.call("GET", f"/api/consults/{cid}/clinical")
    assert (status, problem["error"]["code"]) == (401, "identity_token_required")
    status, _ = await patient.call("POST", f"/api/consults/{cid}/prescriptions", {"items": []})
    assert status == 403

    status, draft_note = await doctor.call("POST", f"/api/consults/{cid}/notes", NOTE)
    status, rx = await doctor.call(
        "POST", f"/api/consults/{cid}/prescriptions", {"items": [item()]}
    )

    # Drafts are the doctor's: the patient does not see them yet.
    status, _ = await patient.call("GET", f"/api/notes/{draft_note['id']}")
    assert status == 404
    status, listing = await patient.call("GET", f"/api/consults/{cid}/clinical")
    assert listing == {"notes": [], "prescriptions": []}

    # A pharmacist cannot sign; a colleague who is not in the consult cannot either.
    status, problem = await pharmacist.call("POST", f"/api/prescriptions/{rx['id']}/sign")
    assert status == 403
    status, problem = await pharmacist.call("POST", f"/api/notes/{draft_note['id']}/sign")
    assert status == 403
    status, _ = await colleague.call("POST", f"/api/notes/{draft_note['id']}/sign")
    assert status == 403
    # A doctor cannot review.
    status, _ = await doctor.call("POST", f"/api/prescriptions/{rx['id']}/sign")
    status, problem = await doctor.call(
        "POST", f"/api/prescriptions/{rx['id']}/review", {"decision": "approve"}
    )
    assert status == 403

    note = await signed_note(doctor, cid)
    # A doctor of another hospital reads nothing, not even that it exists.
    for path in (
        f"/api/notes/{note['id']}",
        f"/api/prescriptions/{rx['id']}",
        f"/api/consults/{cid}/clinical",
    ):
        status, problem = await other_doctor.call("GET", path)
        assert status == 404, path
    status, _ = await other_doctor.call("POST", f"/api/consults/{cid}/notes", NOTE)
    assert status == 404
    # Another patient reads nothing; a pharmacist of another hospital cannot review.
    status, _ = await other_patient.call("GET", f"/api/notes/{note['id']}")
    assert status == 404
    west_pharmacist = Api(live_server, live_server.token("ph-w", "pharmacist", hospital="h-west"))
    status, _ = await west_pharmacist.call(
        "POST", f"/api/prescriptions/{rx['id']}/review", {"decision": "approve"}
    )
    assert status == 404
    # The patient reads their own signed note; allergies are recorded by staff only.
    status, own = await patient.call("GET", f"/api/notes/{note['id']}")
    assert status == 200 and own["status"] == "signed"
    status, _ = await patient.call("PUT", "/api/patients/pt-li/allergies", {"allergies": []})
    assert status == 403
    # The outbox is the admin's.
    status, _ = await doctor.call("GET", "/api/outbox")
    assert status == 403

    # Every read and write is audited, refusals included.
    entries = await audit_entries(live_server, note["id"])
    assert {"actor": "dr-wang", "action": "sign", "outcome": "allowed"} in entries
    assert {"actor": "dr-sun", "action": "view", "outcome": "refused:note_not_found"} in entries
    assert {"actor": "pt-zhou", "action": "view", "outcome": "refused:note_not_found"} in entries
    assert {"actor": "pt-li", "action": "view", "outcome": "allowed"} in entries
    rx_entries = await audit_entries(live_server, rx["id"])
    assert {"actor": "ph-zhao", "action": "sign", "outcome": "refused:forbidden"} in rx_entries


async def test_signed_documents_reach_the_sql_record_store_and_admin_sees_the_outbox(
    live_server: LiveServer,
) -> None:
    consult, doctor, _ = await visit(live_server)
    note = await signed_note(doctor, consult["id"])
    admin = Api(live_server, live_server.token("admin-1", "admin", hospital=HOSPITAL))
    for _ in range(200):
        status, current = await doctor.call("GET", f"/api/notes/{note['id']}")
        if current["delivery"]["status"] == "delivered":
            break
        await asyncio.sleep(0.05)
    assert current["delivery"]["status"] == "delivered"
    status, entries = await admin.call("GET", "/api/outbox")
    assert status == 200
    assert [(e["idempotency_key"], e["status"]) for e in entries] == [
        (f"note:{note['id']}", "delivered")
    ]
    assert "payload" not in entries[0]
    status, _problem = await admin.call("POST", f"/api/outbox/{entries[0]['id']}/retry")
    assert status == 409

    from sqlalchemy import select

    from clinical.models import RecordEncounter, RecordNote
    from config.database import Database

    database = Database(live_server.settings.effective_database_url)
    try:
        async with database.sessions() as session:
            notes = list(await session.scalars(select(RecordNote)))
            encounters = list(await session.scalars(select(RecordEncounter)))
    finally:
        await database.dispose()
    assert [n.id for n in notes] == [note["id"]]
    assert notes[0].signature == note["signature"]["value"]
    assert [(e.id, e.encounter_class) for e in encounters] == [(consult["id"], "VR")]


async def test_openapi_describes_the_clinical_routes(live_server: LiveServer) -> None:
    async with live_server.http.get(f"{live_server.url}/api/openapi.json") as response:
        document = await response.json()
    for path in (
        "/api/consults/{consult_id}/notes",
        "/api/notes/{note_id}",
        "/api/notes/{note_id}/sign",
        "/api/notes/{note_id}/amendments",
        "/api/consults/{consult_id}/prescriptions",
        "/api/prescriptions/{prescription_id}",
        "/api/prescriptions/{prescription_id}/sign",
        "/api/prescriptions/{prescription_id}/review",
        "/api/pharmacy/queue",
        "/api/outbox/{entry_id}/retry",
    ):
        assert path in document["paths"], path
    assert "NoteOut" in document["components"]["schemas"]
