"""The hospital system schedules, reads and ends consults over REST."""

from __future__ import annotations

import asyncio
from typing import Any

from rooms.identity import Role
from signaling.auth import verifier_from_settings
from tests.integration.live import HOSPITAL, LiveServer, join_token, visit_body


async def test_scheduling_gives_the_patient_a_join_link_and_staff_a_link_without_a_token(
    live_server: LiveServer,
) -> None:
    consult = await live_server.schedule_visit()
    assert consult["kind"] == "visit"
    assert consult["state"] == "scheduled"
    assert {p["sub"] for p in consult["participants"]} == {"dr-wang", "pt-li"}
    host = next(p for p in consult["participants"] if p["is_host"])
    assert host["sub"] == "dr-wang"
    page = f"{live_server.settings.base_url()}/join/{consult['id']}"
    assert host["join_url"] == page  # the doctor opens it with their own identity token
    patient = next(p for p in consult["participants"] if p["role"] == "patient")
    assert patient["join_url"].startswith(f"{page}?token=")
    identity = verifier_from_settings(live_server.settings).verify(join_token(consult, "pt-li"))
    assert (identity.sub, identity.hospital) == ("pt-li", HOSPITAL)
    assert identity.consult_id == consult["id"]


async def test_a_participant_reads_the_consult_without_join_links(live_server: LiveServer) -> None:
    consult = await live_server.schedule_visit()
    token = join_token(consult, "pt-li")
    async with live_server.http.get(
        f"{live_server.url}/api/consults/{consult['id']}", headers=live_server.headers(token)
    ) as response:
        assert response.status == 200
        body = await response.json()
    assert body["id"] == consult["id"]
    assert all(p["join_url"] is None for p in body["participants"])


async def test_staff_of_another_hospital_cannot_see_the_consult(live_server: LiveServer) -> None:
    consult = await live_server.schedule_visit()
    outsider = live_server.token("coord-9", Role.COORDINATOR, hospital="h-west")
    async with live_server.http.get(
        f"{live_server.url}/api/consults/{consult['id']}", headers=live_server.headers(outsider)
    ) as response:
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "consult_not_found"


async def post(live_server: LiveServer, path: str, token: str | None, body: Any = None) -> Any:
    headers = live_server.headers(token) if token else {}
    async with live_server.http.post(
        f"{live_server.url}{path}", json=body, headers=headers
    ) as response:
        return response.status, await response.json()


async def test_a_patient_cannot_schedule_consults(live_server: LiveServer) -> None:
    status, body = await post(
        live_server, "/api/consults", live_server.token("pt-1", Role.PATIENT), {}
    )
    assert (status, body["error"]["code"]) == (422, "invalid_payload")
    consult_body = visit_body()
    status, body = await post(
        live_server, "/api/consults", live_server.token("pt-1", Role.PATIENT), consult_body
    )
    assert (status, body["error"]["code"]) == (403, "forbidden")


async def test_a_coordinator_cannot_schedule_for_another_hospital(live_server: LiveServer) -> None:
    body = visit_body(hospital="h-west")
    status, answer = await post(
        live_server, "/api/consults", live_server.token("c", Role.COORDINATOR), body
    )
    assert (status, answer["error"]["code"]) == (403, "forbidden")


async def test_bad_input_gets_field_errors(live_server: LiveServer) -> None:
    coordinator = live_server.token("c", Role.COORDINATOR)
    status, body = await post(
        live_server,
        "/api/consults",
        coordinator,
        {
            "kind": "party",
            "hospital": HOSPITAL,
            "title": "",
            "scheduled_at": "tomorrow",
            "host": {"sub": "dr-1", "name": "Dr One"},
            "participants": [],
        },
    )
    assert status == 422
    fields = {detail["field"] for detail in body["error"]["details"]}
    assert {"kind", "title", "scheduled_at", "participants"} <= fields
    status, body = await post(
        live_server,
        "/api/consults",
        coordinator,
        visit_body(
            title="No patient",
            participants=[{"sub": "dr-2", "name": "Dr Two", "role": "doctor"}],
        ),
    )
    assert (status, body["error"]["code"]) == (422, "invalid_payload")
    assert body["error"]["details"] == [
        {"field": "participants", "message": "a visit needs a patient"}
    ]
    async with live_server.http.post(
        f"{live_server.url}/api/consults",
        data=b"{not json",
        headers=live_server.headers(coordinator),
    ) as response:
        assert response.status == 422
        assert (await response.json())["error"]["code"] == "invalid_payload"


async def test_requests_without_a_valid_token_are_refused(live_server: LiveServer) -> None:
    status, body = await post(live_server, "/api/consults", None, {})
    assert (status, body["error"]["code"]) == (401, "token_missing")
    status, body = await post(live_server, "/api/consults", "not-a-jwt", {})
    assert (status, body["error"]["code"]) == (401, "token_invalid")
    expired = live_server.token("c", Role.COORDINATOR, ttl=-60)  # beyond the 30 s leeway
    status, body = await post(live_server, "/api/consults", expired, {})
    assert (status, body["error"]["code"]) == (401, "token_expired")


async def test_the_host_ends_the_consult_once(live_server: LiveServer) -> None:
    consult = await live_server.schedule_visit()
    path = f"/api/consults/{consult['id']}/end"
    status, body = await post(live_server, path, join_token(consult, "pt-li"))
    assert (status, body["error"]["code"]) == (401, "identity_token_required")
    patient = live_server.token("pt-li", Role.PATIENT)
    status, body = await post(live_server, path, patient)
    assert (status, body["error"]["code"]) == (403, "forbidden")
    status, body = await post(live_server, path, live_server.token_of(consult, "dr-wang"))
    assert status == 200
    assert body["state"] == "ended"
    assert body["ended_at"] is not None
    status, body = await post(live_server, path, live_server.token_of(consult, "dr-wang"))
    assert (status, body["error"]["code"]) == (409, "consult_ended")
    async with live_server.http.get(
        f"{live_server.url}/api/consults/{consult['id']}/timeline",
        headers=live_server.headers(live_server.token_of(consult, "dr-wang")),
    ) as response:
        events = (await response.json())["events"]
    assert [event["kind"] for event in events] == ["scheduled", "ended"]
    # A person is their hospital and their sub there: the trail names both.
    assert [(e["actor"]["hospital"], e["actor"]["sub"]) for e in events] == [
        ("h-east", "coord-1"),
        ("h-east", "dr-wang"),
    ]


async def test_the_api_is_described_and_health_is_reported(live_server: LiveServer) -> None:
    async with live_server.http.get(f"{live_server.url}/api/openapi.json") as response:
        spec = await response.json()
    assert spec["openapi"].startswith("3.")
    assert {"/api/consults", "/api/consults/{consult_id}", "/api/consults/{consult_id}/end"} <= set(
        spec["paths"]
    )
    assert "ConsultCreate" in spec["components"]["schemas"]
    async with live_server.http.get(f"{live_server.url}/healthz") as response:
        assert response.status == 200
    async with live_server.http.get(f"{live_server.url}/readyz") as response:
        assert (await response.json())["checks"]["database"] == "ok"
    async with live_server.http.get(f"{live_server.url}/metrics") as response:
        assert "teleconsult_" in await response.text()


async def test_the_first_consults_of_a_new_hospital_scheduled_at_once_are_all_stored(
    live_server: LiveServer,
) -> None:
    coordinator = live_server.token("coord-9", Role.COORDINATOR, "h-new")
    body = visit_body(
        hospital="h-new",
        title="First visits of a hospital that just joined",
        host={"sub": "dr-new", "name": "Dr. Xu Ming", "role": "doctor"},
        participants=[{"sub": "pt-new", "name": "Zhao Lei", "role": "patient"}],
    )
    answers = await asyncio.gather(
        *(post(live_server, "/api/consults", coordinator, body) for _ in range(12))
    )
    assert [status for status, _ in answers] == [201] * 12, answers
    assert len({consult["id"] for _, consult in answers}) == 12
