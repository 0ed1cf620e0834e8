"""Webhooks as a hospital's system receives them: a receiver on loopback verifies every request
with the standardwebhooks library (code we did not write), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from config.settings import Settings
from rooms.identity import Role
from tests.integration.clinical_helpers import NOTE, item
from tests.integration.live import (
    HOSPITAL,
    LiveServer,
    SignalingClient,
    connect,
    join_token,
    participant_id,
    serving,
)
from tests.log_scan import register_secret

ALL_EVENTS = [
    "consult.scheduled",
    "consult.started",
    "consult.ended",
    "participant.joined",
    "participant.left",
    "lobby.waiting",
    "recording.ready",
    "note.signed",
    "prescription.signed",
    "prescription.reviewed",
    "delivery.failed",
]
#: Quick retries, so that a test sees several attempts (the policy is the deployment's).
QUICK = {
    "outbox_backoff_seconds": 0.05,
    "outbox_poll_seconds": 0.05,
    "outbox_max_attempts": 10,
    "webhook_timeout_seconds": 2.0,
}
#: How long a test waits for deliveries before it fails (not a measure of speed).
PATIENCE = 60.0


@dataclass
class Receiver:
    """A hospital system's webhook endpoint: verifies each request, deduplicates by webhook-id.

    :param fail_first: requests answered 503 before any is looked at.
    :param slow_request: the number of the request answered only after ``slow_seconds`` (once
        it has been accepted): the server gives up waiting and sends it again.
    """

    fail_first: int = 0
    slow_request: int | None = None
    slow_seconds: float = 0.0
    secret: str | None = None
    url: str = ""
    requests: int = 0
    rejected: int = 0
    #: The webhook-id of every verified request, duplicates included, in arrival order.
    received_ids: list[str] = field(default_factory=list)
    #: Each event once (the first of its webhook-id), in arrival order.
    events: list[dict[str, Any]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    #: The webhook-id of the request answered slowly, once it came.
    slow_id: str | None = None
    #: Set once the slow request is over: answered, or dropped when the server hung up.
    slow_over: asyncio.Event = field(default_factory=asyncio.Event)
    _seen: set[str] = field(default_factory=set)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests += 1
        number = self.requests
        if number <= self.fail_first:
            return web.Response(status=503)
        assert self.secret is not None
        try:
            event = Webhook(self.secret).verify(body, dict(request.headers))
        except WebhookVerificationError:
            self.rejected += 1
            return web.Response(status=400)
        webhook_id = request.headers["webhook-id"]
        self.received_ids.append(webhook_id)
        self.bodies.append(body)
        if webhook_id not in self._seen:
            self._seen.add(webhook_id)
            self.events.append(event | {"id": webhook_id})
        if number == self.slow_request:
            self.slow_id = webhook_id
            try:
                await asyncio.sleep(self.slow_seconds)
            finally:
                self.slow_over.set()
        return web.Response(status=204)

    def of_consult(self, consult_id: str) -> list[str]:
        """The types of the consult's events, in the order they arrived."""
        return [e["type"] for e in self.events if e["data"]["consult_id"] == consult_id]

    async def wait_for(self, check: Callable[[], bool], what: str) -> None:
        """Wait until ``check`` holds (the deliveries are asynchronous)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PATIENCE
        while not check():
            assert loop.time() < deadline, f"still waiting for {what}: {self.events}"
            await asyncio.sleep(0.05)


@asynccontextmanager
async def receiving(receiver: Receiver) -> AsyncIterator[Receiver]:
    """Serve ``receiver`` on loopback."""
    app = web.Application()
    app.router.add_post("/hooks", receiver.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    receiver.url = str(server.make_url("/hooks"))
    try:
        yield receiver
    finally:
        await server.close()


@asynccontextmanager
async def server(
    database_url: str, settings_factory: Callable[..., Settings], **overrides: Any
) -> AsyncIterator[LiveServer]:
    """The whole server with quick retries on a fresh database."""
    settings = settings_factory(database_url=database_url, **(QUICK | overrides))
    async with serving(settings) as live:
        yield live


async def api(
    live: LiveServer, token: str, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    """One REST call: the status and the JSON answer."""
    async with live.http.request(
        method, f"{live.url}{path}", json=body, headers=live.headers(token)
    ) as response:
        return response.status, await response.json()


async def subscribe(
    live: LiveServer,
    receiver: Receiver,
    event_types: Iterable[str] = ALL_EVENTS,
    hospital: str = HOSPITAL,
) -> dict[str, Any]:
    """An admin of ``hospital`` adds the receiver as an endpoint; it learns the secret."""
    admin = live.token("admin-1", Role.ADMIN, hospital)
    status, endpoint = await api(
        live,
        admin,
        "POST",
        f"/api/hospitals/{hospital}/webhooks",
        {"url": receiver.url, "event_types": list(event_types)},
    )
    assert status == 201, endpoint
    register_secret(endpoint["secret"])
    receiver.secret = endpoint["secret"]
    return endpoint


async def joined(live: LiveServer, consult: dict[str, Any], sub: str) -> SignalingClient:
    """A participant's connection, joined to the consult."""
    client = await connect(live.url, live.token_of(consult, sub))
    ack = await client.call("join", {"consult_id": consult["id"]})
    assert ack["ok"], ack
    return client


async def test_every_event_of_a_visit_arrives_signed_and_in_order(
    database_url: str, settings_factory: Callable[..., Settings]
) -> None:
    async with (
        receiving(Receiver()) as receiver,
        server(database_url, settings_factory) as live,
    ):
        await subscribe(live, receiver)
        consult = await live.schedule_visit()
        cid = consult["id"]
        patient = await connect(live.url, join_token(consult, "pt-li"))
        assert (await patient.call("join", {"consult_id": cid}))["status"] == "lobby"
        doctor = await joined(live, consult, "dr-wang")
        assert (await doctor.call("admit", {"participant_id": participant_id(consult, "pt-li")}))[
            "ok"
        ]
        await patient.next("admitted")
        doctor_token = live.token("dr-wang", Role.DOCTOR, name="Dr. Wang Fang")
        status, note = await api(live, doctor_token, "POST", f"/api/consults/{cid}/notes", NOTE)
        assert status == 201, note
        status, _ = await api(live, doctor_token, "POST", f"/api/notes/{note['id']}/sign")
        assert status == 200
        status, rx = await api(
            live, doctor_token, "POST", f"/api/consults/{cid}/prescriptions", {"items": [item()]}
        )
        assert status == 201, rx
        status, _ = await api(live, doctor_token, "POST", f"/api/prescriptions/{rx['id']}/sign")
        assert status == 200
        pharmacist = live.token("ph-zhao", Role.PHARMACIST)
        status, _ = await api(
            live,
            pharmacist,
            "POST",
            f"/api/prescriptions/{rx['id']}/review",
            {"decision": "approve"},
        )
        assert status == 200
        assert await patient.call("leave", {}) == {"ok": True}
        assert await doctor.call("end", {}) == {"ok": True}
        await patient.close()
        await doctor.close()

        expected = [
            "consult.scheduled",
            "lobby.waiting",
            "consult.started",
            "participant.joined",  # the doctor
            "participant.joined",  # the patient, admitted
            "note.signed",
            "prescription.signed",
            "prescription.reviewed",
            "participant.left",
            "consult.ended",
        ]
        await receiver.wait_for(
            lambda: "consult.ended" in receiver.of_consult(cid), "the consult's end"
        )
        assert receiver.of_consult(cid) == expected
        assert receiver.rejected == 0
        events = {e["type"]: e for e in receiver.events}
        assert events["consult.ended"]["data"]["state"] == "ended"
        assert events["note.signed"]["data"]["note_id"] == note["id"]
        assert events["prescription.reviewed"]["data"]["status"] == "approved"
        patient_joined = [e for e in receiver.events if e["type"] == "participant.joined"][1]
        assert patient_joined["data"]["participant_id"] == participant_id(consult, "pt-li")
        assert patient_joined["data"]["role"] == "patient"
        # Ids and states only: no names, no clinical text, no tokens in what the hospital gets.
        everything = b"".join(receiver.bodies).decode()
        for private in ("Li Hua", "Wang Fang", NOTE["assessment"], "Amlodipine", "eyJ"):
            assert private not in everything


async def test_events_arrive_once_per_id_when_the_endpoint_fails_then_answers_slowly(
    database_url: str, settings_factory: Callable[..., Settings]
) -> None:
    receiver = Receiver(fail_first=5, slow_request=7, slow_seconds=2.0)
    async with (
        receiving(receiver),
        server(database_url, settings_factory, webhook_timeout_seconds=0.5) as live,
    ):
        await subscribe(live, receiver, ["consult.scheduled", "consult.ended"])
        coordinator = live.token("coord-1", Role.COORDINATOR)
        consults = [await live.schedule_visit() for _ in range(3)]
        for consult in consults:
            status, _ = await api(live, coordinator, "POST", f"/api/consults/{consult['id']}/end")
            assert status == 200
        await receiver.wait_for(lambda: len(receiver.events) == 6, "all six events")
        for consult in consults:
            assert receiver.of_consult(consult["id"]) == ["consult.scheduled", "consult.ended"]
        # The slow answer was not waited for: its event comes again, under the same id.
        await receiver.wait_for(
            lambda: receiver.received_ids.count(receiver.slow_id or "") >= 2, "the slow one again"
        )
        assert len(set(receiver.received_ids)) == 6  # no event under a second id
        await receiver.wait_for(
            receiver.slow_over.is_set, "the slow request's end"
        )  # before teardown


async def test_a_receiver_with_the_wrong_secret_rejects_them_all_and_failures_are_reported(
    database_url: str, settings_factory: Callable[..., Settings]
) -> None:
    async with (
        receiving(Receiver()) as wrong,
        receiving(Receiver()) as monitor,
        server(database_url, settings_factory, outbox_max_attempts=3) as live,
    ):
        endpoint = await subscribe(live, wrong, ["consult.scheduled"])
        await subscribe(live, monitor, ["delivery.failed"])
        wrong.secret = "whsec_" + base64.b64encode(b"not the endpoint's secret, 32 b!").decode()
        consult = await live.schedule_visit()
        await monitor.wait_for(lambda: len(monitor.events) == 1, "the failure report")

        assert wrong.rejected == 3 and wrong.events == []
        report = monitor.events[0]["data"]
        assert report["consult_id"] == consult["id"]
        assert report["endpoint_id"] == endpoint["id"]
        assert report["event_type"] == "consult.scheduled"
        assert report["attempts"] == 3 and report["error"] == "EndpointRefused"
        admin = live.token("admin-1", Role.ADMIN)
        status, log = await api(
            live, admin, "GET", f"/api/hospitals/{HOSPITAL}/webhooks/deliveries?status=failed"
        )
        assert status == 200
        failed = [d for d in log if d["endpoint_id"] == endpoint["id"]]
        assert len(failed) == 1
        assert failed[0]["event_type"] == "consult.scheduled"
        assert failed[0]["attempts"] == 3
        assert failed[0]["last_error"] == "EndpointRefused: HTTP 400"
        assert failed[0]["event_id"] == report["event_id"]

        # The admin rotates the secret, the receiver takes the new one, the event is replayed.
        status, rotated = await api(
            live,
            admin,
            "POST",
            f"/api/hospitals/{HOSPITAL}/webhooks/{endpoint['id']}/rotate-secret",
        )
        assert status == 200
        register_secret(rotated["secret"])
        assert rotated["secret"] != endpoint["secret"]
        wrong.secret = rotated["secret"]
        status, replayed = await api(
            live,
            admin,
            "POST",
            f"/api/hospitals/{HOSPITAL}/webhooks/deliveries/{failed[0]['id']}/replay",
        )
        assert status == 200 and replayed["status"] == "pending"
        await wrong.wait_for(lambda: len(wrong.events) == 1, "the replayed event")
        assert wrong.events[0]["id"] == failed[0]["event_id"], "a replay keeps its webhook-id"


async def test_each_hospital_receives_the_events_of_its_own_consults_only(
    database_url: str, settings_factory: Callable[..., Settings]
) -> None:
    async with (
        receiving(Receiver()) as east,
        receiving(Receiver()) as west,
        server(database_url, settings_factory) as live,
    ):
        await subscribe(live, east, hospital=HOSPITAL)
        await subscribe(live, west, hospital="h-west")
        # A referral of h-east: its expert is of h-west, and is no part of h-west's record.
        referral = await live.schedule_visit(
            kind="referral",
            participants=[
                {"sub": "ex-zhao", "name": "Prof. Zhao", "role": "expert", "hospital": "h-west"}
            ],
        )
        doctor = await joined(live, referral, "dr-wang")
        expert = await joined(live, referral, "ex-zhao")
        await expert.call("leave", {})
        await doctor.call("end", {})
        await expert.close()
        await doctor.close()
        west_coordinator = live.token("coord-w", Role.COORDINATOR, "h-west")
        status, own = await api(
            live,
            west_coordinator,
            "POST",
            "/api/consults",
            {
                "kind": "visit",
                "hospital": "h-west",
                "title": "Visit at h-west",
                "scheduled_at": referral["scheduled_at"],
                "host": {"sub": "dr-li", "name": "Dr. Li", "role": "doctor"},
                "participants": [{"sub": "pt-wu", "name": "Wu Min", "role": "patient"}],
            },
        )
        assert status == 201
        await east.wait_for(lambda: "consult.ended" in east.of_consult(referral["id"]), "end")
        await west.wait_for(lambda: len(west.events) == 1, "h-west's own consult")

        assert east.of_consult(referral["id"]) == [
            "consult.scheduled",
            "consult.started",
            "participant.joined",
            "participant.joined",
            "participant.left",
            "consult.ended",
        ]
        expert_events = [e for e in east.events if e["type"] == "participant.left"]
        assert expert_events[0]["data"]["participant_hospital"] == "h-west"
        assert {e["data"]["hospital"] for e in east.events} == {HOSPITAL}
        assert [(e["type"], e["data"]["consult_id"]) for e in west.events] == [
            ("consult.scheduled", own["id"])
        ]


async def test_only_the_hospitals_administrators_manage_its_webhooks_and_never_see_a_secret(
    database_url: str, settings_factory: Callable[..., Settings]
) -> None:
    async with server(database_url, settings_factory) as live:
        path = f"/api/hospitals/{HOSPITAL}/webhooks"
        body = {"url": "https://his.h-east.example/hooks", "event_types": ["consult.ended"]}
        for token in (
            live.token("dr-wang", Role.DOCTOR),
            live.token("admin-w", Role.ADMIN, "h-west"),
        ):
            for method, route, payload in (("GET", path, None), ("POST", path, body)):
                status, problem = await api(live, token, method, route, payload)
                assert status == 403 and problem["error"]["code"] == "forbidden"
        region_admin = live.token("admin-r", Role.ADMIN, live.settings.region_code)
        status, created = await api(live, region_admin, "POST", path, body)
        assert status == 201
        register_secret(created["secret"])
        assert created["secret"].startswith("whsec_")
        admin = live.token("admin-1", Role.ADMIN)
        status, listed = await api(live, admin, "GET", path)
        assert status == 200 and [e["id"] for e in listed] == [created["id"]]
        assert created["secret"] not in json.dumps(listed)
        assert all("secret" not in endpoint for endpoint in listed)
        status, changed = await api(
            live, admin, "PATCH", f"{path}/{created['id']}", {"enabled": False}
        )
        assert status == 200 and changed["enabled"] is False and "secret" not in changed
        status, problem = await api(
            live, admin, "POST", path, {"url": "ftp://nowhere", "event_types": ["consult.ended"]}
        )
        assert status == 422 and problem["error"]["code"] == "invalid_payload"
        status, problem = await api(
            live, admin, "POST", path, {"url": body["url"], "event_types": ["consult.paused"]}
        )
        assert status == 422
        # An endpoint nobody answers (port 9, discard) holds a pending delivery until deleted.
        status, unanswered = await api(
            live,
            admin,
            "POST",
            path,
            {"url": "http://127.0.0.1:9/hooks", "event_types": ["consult.scheduled"]},
        )
        register_secret(unanswered["secret"])
        await live.schedule_visit()
        deliveries = f"{path}/deliveries?status=pending"
        status, pending = await api(live, admin, "GET", deliveries)
        assert [d["endpoint_id"] for d in pending] == [unanswered["id"]]
        status, _ = await api(live, admin, "DELETE", f"{path}/{unanswered['id']}")
        assert status == 200
        status, pending = await api(live, admin, "GET", deliveries)
        assert status == 200 and pending == []
        status, _ = await api(live, admin, "DELETE", f"{path}/{created['id']}")
        assert status == 200
        status, problem = await api(live, admin, "DELETE", f"{path}/{created['id']}")
        assert status == 404 and problem["error"]["code"] == "webhook_endpoint_not_found"
        status, audit = await api(live, admin, "GET", "/api/audit?resource_type=webhook_endpoint")
        assert status == 200
        actions = {(entry["action"], entry["outcome"]) for entry in audit["entries"]}
        assert {("create", "allowed"), ("update", "allowed"), ("delete", "allowed")} <= actions
        assert ("list", "refused:forbidden") in actions


async def test_a_stopped_recording_is_announced_ready_with_its_id(
    database_url: str, settings_factory: Callable[..., Settings]
) -> None:
    async with (
        receiving(Receiver()) as receiver,
        server(database_url, settings_factory) as live,
    ):
        await subscribe(live, receiver, ["recording.ready"])
        consult = await live.schedule_visit(
            kind="referral",
            participants=[{"sub": "ex-zhao", "name": "Prof. Zhao", "role": "expert"}],
        )
        doctor = await joined(live, consult, "dr-wang")
        started = await doctor.call("start_recording", {})
        assert started["ok"] and started["recording"], started
        assert (await doctor.call("stop_recording", {}))["ok"]
        await doctor.close()
        await receiver.wait_for(lambda: len(receiver.events) == 1, "the recording")
        ready = receiver.events[0]["data"]
        assert ready["consult_id"] == consult["id"]
        assert ready["recording_id"] == started["recording_id"]
        assert ready["status"] == "complete"


async def test_a_record_that_the_record_store_never_took_is_reported_as_delivery_failed(
    database_url: str, settings_factory: Callable[..., Settings]
) -> None:
    # A FHIR store nobody listens on (port 9, discard, on loopback): every write is refused.
    async with (
        receiving(Receiver()) as monitor,
        server(
            database_url,
            settings_factory,
            outbox_max_attempts=2,
            record_store="fhir",
            fhir_base_url="http://127.0.0.1:9/fhir",
        ) as live,
    ):
        await subscribe(live, monitor, ["delivery.failed"])
        consult = await live.schedule_visit()
        doctor = live.token("dr-wang", Role.DOCTOR, name="Dr. Wang Fang")
        status, note = await api(live, doctor, "POST", f"/api/consults/{consult['id']}/notes", NOTE)
        assert status == 201
        status, _ = await api(live, doctor, "POST", f"/api/notes/{note['id']}/sign")
        assert status == 200
        await monitor.wait_for(lambda: len(monitor.events) == 1, "the failure report")
        report = monitor.events[0]["data"]
        assert report["kind"] == "note" and report["document_id"] == note["id"]
        assert report["consult_id"] == consult["id"] and report["attempts"] == 2
