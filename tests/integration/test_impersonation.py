"""Whoever schedules a visit cannot act as the people invited to it.

A coordinator schedules a visit and holds every token the answer gave it. None of them signs,
amends or reviews a clinical document, and the audit log records each refusal.
"""

from __future__ import annotations

from typing import Any

from rooms.identity import Role
from tests.integration.clinical_helpers import NOTE, item
from tests.integration.live import HOSPITAL, LiveServer


async def call(
    live: LiveServer, token: str, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    async with live.http.request(
        method, f"{live.url}{path}", json=body, headers=live.headers(token)
    ) as response:
        return response.status, await response.json()


def tokens_in(consult: dict[str, Any]) -> dict[str, str]:
    """Every token the scheduling answer carries, by the invitee's subject."""
    return {
        p["sub"]: p["join_url"].split("token=", 1)[1]
        for p in consult["participants"]
        if "token=" in p["join_url"]
    }


async def test_a_coordinator_cannot_sign_amend_or_review_with_the_tokens_scheduling_gave_it(
    live_server: LiveServer,
) -> None:
    live = live_server
    coordinator = live.token("coord-1", Role.COORDINATOR)
    consult = await live.schedule_visit()
    # The coordinator also invites the doctor's subject as a "patient" of another visit, to get
    # a link that names them.
    decoy = await live.schedule_visit(
        host={"sub": "dr-qian", "name": "Dr. Qian", "role": "doctor"},
        participants=[{"sub": "dr-wang", "name": "Dr. Wang Fang", "role": "patient"}],
    )
    held = {**tokens_in(consult), **{f"decoy:{s}": t for s, t in tokens_in(decoy).items()}}
    assert set(held) == {"pt-li", "decoy:dr-wang"}, "staff links carry no token"
    held["coordinator"] = coordinator

    # The doctor, with their own identity token, drafts a note and signs a note and a prescription.
    doctor = live.token("dr-wang", Role.DOCTOR, name="Dr. Wang Fang")
    cid = consult["id"]
    _, draft = await call(live, doctor, "POST", f"/api/consults/{cid}/notes", NOTE)
    _, signed = await call(live, doctor, "POST", f"/api/consults/{cid}/notes", NOTE)
    status, _ = await call(live, doctor, "POST", f"/api/notes/{signed['id']}/sign")
    assert status == 200
    _, rx = await call(
        live, doctor, "POST", f"/api/consults/{cid}/prescriptions", {"items": [item()]}
    )
    status, _ = await call(live, doctor, "POST", f"/api/prescriptions/{rx['id']}/sign", {})
    assert status == 200

    attempts = {
        draft["id"]: ("POST", f"/api/notes/{draft['id']}/sign", None),
        signed["id"]: (
            "POST",
            f"/api/notes/{signed['id']}/amendments",
            {"reason": "Corrected", "plan": "Stop all medication."},
        ),
        rx["id"]: ("POST", f"/api/prescriptions/{rx['id']}/review", {"decision": "approve"}),
    }
    for holder, token in held.items():
        for method, path, body in attempts.values():
            status, problem = await call(live, token, method, path, body)
            assert status in (401, 403, 404), (holder, path, status, problem)

    # Nothing changed: the draft is a draft, the note has no amendment, the prescription waits.
    _, note = await call(live, doctor, "GET", f"/api/notes/{draft['id']}")
    assert note["status"] == "draft"
    _, original = await call(live, doctor, "GET", f"/api/notes/{signed['id']}")
    assert original["amended_by"] == []
    _, prescription = await call(live, doctor, "GET", f"/api/prescriptions/{rx['id']}")
    assert prescription["status"] == "signed" and prescription["review"] is None

    # Each attempt is in the hospital's audit log, refused, under the token it was made with.
    admin = live.token("admin-1", Role.ADMIN, hospital=HOSPITAL)
    for resource_id in attempts:
        status, log = await call(live, admin, "GET", f"/api/audit?resource_id={resource_id}")
        assert status == 200
        refused = {
            entry["actor"]["sub"]
            for entry in log["entries"]
            if entry["outcome"].startswith("refused")
        }
        assert refused == {"pt-li", "dr-wang", "coord-1"}, (resource_id, log["entries"])
        by_link = [e for e in log["entries"] if e["outcome"] == "refused:identity_token_required"]
        assert {e["actor"]["sub"] for e in by_link} == {"pt-li", "dr-wang"}


async def test_a_namesake_at_another_hospital_is_not_the_doctor(
    live_server: LiveServer, clients: Any
) -> None:
    """Identity is (hospital, sub): "dr-wang" of another hospital neither joins nor writes."""
    live = live_server
    consult = await live.schedule_visit()
    cid = consult["id"]
    namesake = live.token("dr-wang", Role.DOCTOR, hospital="h-west", name="Dr. Wang Fang")
    connection = await clients(live.url, namesake)
    ack = await connection.call("join", {"consult_id": cid})
    assert ack["error"]["code"] == "not_invited"
    status, problem = await call(live, namesake, "POST", f"/api/consults/{cid}/notes", NOTE)
    assert (status, problem["error"]["code"]) == (404, "consult_not_found")
    doctor = live.token("dr-wang", Role.DOCTOR, name="Dr. Wang Fang")
    _, note = await call(live, doctor, "POST", f"/api/consults/{cid}/notes", NOTE)
    status, _ = await call(live, namesake, "POST", f"/api/notes/{note['id']}/sign")
    assert status == 404
    status, _ = await call(live, namesake, "GET", f"/api/consults/{cid}")
    assert status == 404
    # In the audit log the namesake is someone else than the doctor.
    admin = live.token("admin-1", Role.ADMIN)
    outcomes = {}
    for hospital in (HOSPITAL, "h-west"):
        query = f"resource_id={note['id']}&actor=dr-wang&actor_hospital={hospital}"
        _, log = await call(live, admin, "GET", f"/api/audit?{query}")
        outcomes[hospital] = {(e["action"], e["outcome"]) for e in log["entries"]}
    assert outcomes == {
        HOSPITAL: {("create", "allowed")},
        "h-west": {("sign", "refused:consult_not_found")},
    }
