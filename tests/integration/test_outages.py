"""A visit goes on through a 20-second outage of PostgreSQL or of Redis (private servers of the
test, really stopped), and nothing is lost, doubled or left behind once they are back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from config.redis import connect_redis
from config.settings import Settings
from migrations.runner import upgrade
from rooms.registry import RedisRegistry
from signaling.access_log import AccessLogger
from signaling.app import create_app
from signaling.auth import issuer_from_settings
from tests.integration.clinical_helpers import NOTE
from tests.integration.live import (
    HOSPITAL,
    LiveServer,
    SignalingClient,
    connect,
    join_token,
    participant_id,
)
from tests.integration.media_client import MediaClient
from tests.integration.test_outbox_fhir import FhirServer
from tests.outages import PrivatePostgres, PrivateRedis

#: How long each outage lasts.
OUTAGE_SECONDS = 20


@asynccontextmanager
async def teleconsult(settings: Settings) -> AsyncIterator[LiveServer]:
    """Our whole server on a migrated database, background jobs included."""
    settings.prepare_data_dir()
    await asyncio.to_thread(upgrade, settings.effective_database_url)
    server = TestServer(create_app(settings), host="127.0.0.1", access_log_class=AccessLogger)
    await server.start_server()
    issuer = issuer_from_settings(settings)
    assert issuer is not None
    try:
        async with ClientSession() as http:
            yield LiveServer(str(server.make_url("")).rstrip("/"), settings, issuer, http)
    finally:
        await server.close()


async def request(
    live: LiveServer, token: str, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    async with live.http.request(
        method, f"{live.url}{path}", json=body, headers=live.headers(token)
    ) as response:
        return response.status, await response.json()


async def readiness(live: LiveServer) -> tuple[int, dict[str, Any]]:
    async with live.http.get(f"{live.url}/readyz") as response:
        return response.status, await response.json()


async def eventually(
    check: Callable[[], Awaitable[bool]], seconds: float, what: str, every: float = 0.25
) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds} s")
        await asyncio.sleep(every)


class Visit:
    """A live visit: the doctor and the patient joined, admitted and publishing to each other."""

    def __init__(self, consult: dict[str, Any], doctor: MediaClient, patient: MediaClient) -> None:
        self.consult = consult
        self.doctor, self.patient = doctor, patient
        self.doctor_id = participant_id(consult, "dr-wang")
        self.patient_id = participant_id(consult, "pt-li")

    def frames(self) -> dict[str, int]:
        """What each side received from the other so far, per kind."""
        return {
            "doctor sees": self.doctor.received[(self.patient_id, "video")],
            "doctor hears": self.doctor.received[(self.patient_id, "audio")],
            "patient sees": self.patient.received[(self.doctor_id, "video")],
            "patient hears": self.patient.received[(self.doctor_id, "audio")],
        }

    async def flowing(self) -> None:
        """Wait until media flow both ways."""
        await self.patient.wait_for(self.doctor_id, "video", 10, timeout=30)
        await self.doctor.wait_for(self.patient_id, "video", 10, timeout=30)

    async def close(self) -> None:
        await self.doctor.close()
        await self.patient.close()


@asynccontextmanager
async def live_visit(live: LiveServer, **overrides: Any) -> AsyncIterator[Visit]:
    consult = await live.schedule_visit(**overrides)
    doctor = await connect(live.url, live.token("dr-wang", "doctor"))
    patient = await connect(live.url, join_token(consult, "pt-li"))
    visit: Visit | None = None
    try:
        assert (await doctor.call("join", {"consult_id": consult["id"]}))["ok"]
        assert (await patient.call("join", {"consult_id": consult["id"]}))["ok"]
        admitted = await doctor.call("admit", {"participant_id": participant_id(consult, "pt-li")})
        assert admitted["ok"], admitted
        await patient.next("admitted")
        visit = Visit(consult, MediaClient(doctor), MediaClient(patient))
        await visit.doctor.publish()
        await visit.patient.publish()
        await visit.flowing()
        yield visit
    finally:
        if visit is not None:
            await visit.close()
        for client in (doctor, patient):
            if client.client.connected:
                await client.close()


async def media_goes_on_through(visit: Visit, seconds: float) -> None:
    """Over ``seconds``, every stream of the visit keeps arriving."""
    before = visit.frames()
    await asyncio.sleep(seconds)
    after = visit.frames()
    stalled = [stream for stream in before if after[stream] <= before[stream]]
    assert not stalled, (stalled, before, after)


@pytest.mark.timeout(240)
async def test_a_postgresql_outage_while_a_note_is_being_signed(
    private_postgres: PrivatePostgres, settings_factory: Callable[..., Settings]
) -> None:
    fhir = FhirServer()
    record_store = TestServer(fhir.app(), host="127.0.0.1")
    await record_store.start_server()
    settings = settings_factory(
        database_url=private_postgres.url,
        record_store="fhir",
        fhir_base_url=str(record_store.make_url("/fhir")),
        outbox_lease_seconds=3,
    )
    try:
        async with teleconsult(settings) as live, live_visit(live) as visit:
            doctor = live.token("dr-wang", "doctor")
            consult_id = visit.consult["id"]
            status, note = await request(
                live, doctor, "POST", f"/api/consults/{consult_id}/notes", NOTE
            )
            assert status == 201, note

            # The note is signed; its delivery reaches the record store just as the database goes.
            fhir.hold = asyncio.Event()
            status, signed = await request(live, doctor, "POST", f"/api/notes/{note['id']}/sign")
            assert status == 200 and signed["status"] == "signed"
            await asyncio.wait_for(fhir.held.wait(), 10)
            await asyncio.to_thread(private_postgres.stop)
            fhir.hold.set()  # the record store keeps it; our server cannot write that it did

            outage = asyncio.create_task(media_goes_on_through(visit, OUTAGE_SECONDS))
            notes = f"/api/consults/{consult_id}/notes"
            status, problem = await request(live, doctor, "POST", notes, NOTE)
            assert status == 503 and problem["error"]["code"] == "service_unavailable"
            status, ready = await readiness(live)
            assert status == 503 and ready["checks"]["database"] == "unavailable"
            await outage  # the visit's media went on for the whole outage
            _, ready = await readiness(live)
            assert ready["jobs"]["outbox"]["last_error"] is not None  # it failed, and says so

            await asyncio.to_thread(private_postgres.start)
            admin = live.token("admin-1", "admin", HOSPITAL)

            async def delivered() -> bool:
                status, entries = await request(live, admin, "GET", "/api/outbox")
                return status == 200 and {e["status"] for e in entries} == {"delivered"}

            await eventually(delivered, 60, "the signed note delivered after recovery")
            assert fhir.creations and set(fhir.creations.values()) == {1}, fhir.creations
            assert fhir.invalid == []
            status, ready = await readiness(live)
            assert status == 200
            outbox = ready["jobs"]["outbox"]
            assert outbox["status"] == "running" and outbox["restarts"] >= 1, outbox
            # The note refused during the outage was not stored halfway.
            status, clinical = await request(
                live, doctor, "GET", f"/api/consults/{consult_id}/clinical"
            )
            assert status == 200 and [n["id"] for n in clinical["notes"]] == [note["id"]]
            assert visit.doctor.signaling.client.connected
            assert visit.patient.signaling.client.connected
    finally:
        await record_store.close()


@pytest.mark.timeout(240)
async def test_a_redis_outage_refuses_new_joins_and_leaves_no_ghost(
    stoppable_redis: PrivateRedis, settings_factory: Callable[..., Settings]
) -> None:
    settings = settings_factory(redis_url=stoppable_redis.url)
    registry = RedisRegistry(connect_redis(stoppable_redis.url))
    resident: SignalingClient | None = None
    extra = {"participants": [
        {"sub": "pt-li", "name": "Li Hua", "role": "patient"},
        {"sub": "dr-chen", "name": "Dr. Chen Jie", "role": "doctor"},
    ]}  # fmt: skip
    try:
        async with teleconsult(settings) as live, live_visit(live, **extra) as visit:
            consult_id = visit.consult["id"]
            resident = await connect(live.url, live.token("dr-chen", "doctor"))
            assert (await resident.call("join", {"consult_id": consult_id}))["ok"]
            present = {visit.doctor_id, visit.patient_id, participant_id(visit.consult, "dr-chen")}
            assert set(await registry.presence(consult_id)) == present

            stoppable_redis.freeze()
            outage = asyncio.create_task(media_goes_on_through(visit, OUTAGE_SECONDS))
            await resident.close()  # leaves while Redis cannot hear it
            resident = await connect(live.url, live.token("dr-chen", "doctor"))
            refused = await resident.call("join", {"consult_id": consult_id}, timeout=20)
            assert refused["error"]["code"] == "service_unavailable", refused
            status, ready = await readiness(live)
            assert status == 503 and ready["checks"]["redis"] == "unavailable"
            await outage  # the visit's media went on for the whole outage
            _, ready = await readiness(live)
            assert ready["jobs"]["presence"]["last_error"] is not None  # it failed, and says so
            stoppable_redis.thaw()

            async def right() -> bool:
                return set(await registry.presence(consult_id)) == {
                    visit.doctor_id,
                    visit.patient_id,
                }

            await eventually(right, 60, "presence without the resident who left")
            joined = await resident.call("join", {"consult_id": consult_id})
            assert joined["ok"], joined
            here = {p["participant_id"] for p in joined["participants"] if p["status"] == "joined"}
            assert here == present
            assert visit.doctor.signaling.client.connected
            assert visit.patient.signaling.client.connected
    finally:
        stoppable_redis.thaw()
        if resident is not None and resident.client.connected:
            await resident.close()
        await registry.close()
