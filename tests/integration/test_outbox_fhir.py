"""The outbox delivers signed documents to the hospital record store exactly once: to a FHIR
server served inside the test (it validates what it receives with fhir.resources and can be told
to fail or to drop the connection), across outages and a restart of our server, on SQLite and on
the real PostgreSQL; and to the SQL record store."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from fhir.resources.R4B import get_fhir_model_class
from prometheus_client import REGISTRY

from clinical.record_store import SqlRecordStore
from config.database import Database
from config.settings import Settings
from migrations.runner import upgrade
from outbox.deliverer import Delivery
from signaling.app import create_app
from signaling.auth import issuer_from_settings
from tests.integration.clinical_helpers import NOTE, item
from tests.integration.live import HOSPITAL, LiveServer


class FhirServer:
    """A tiny FHIR R4 server: ``PUT /{type}/{id}`` validated with fhir.resources R4B."""

    def __init__(self) -> None:
        self.resources: dict[tuple[str, str], dict[str, Any]] = {}
        self.creations: Counter[tuple[str, str]] = Counter()
        self.requests = 0
        self.refused = 0
        self.invalid: list[str] = []
        self.fail_next = 0
        self.fail_always = False
        self.drop_after_store = 0
        self.hold: asyncio.Event | None = None
        self.held = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_put("/fhir/{type}/{id}", self.put)
        return app

    async def put(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        if self.fail_always or self.fail_next > 0:
            self.fail_next = max(self.fail_next - 1, 0)
            self.refused += 1
            return web.json_response({"resourceType": "OperationOutcome"}, status=503)
        kind, resource_id = request.match_info["type"], request.match_info["id"]
        body = await request.json()
        try:
            model = get_fhir_model_class(kind).model_validate(body)
        except Exception as exc:
            self.invalid.append(f"{kind}/{resource_id}: {exc}")
            return web.json_response({"resourceType": "OperationOutcome"}, status=422)
        assert model.id == resource_id
        if self.hold is not None:
            self.held.set()
            await self.hold.wait()
        key = (kind, resource_id)
        created = key not in self.resources
        self.resources[key] = body
        if created:
            self.creations[key] += 1
        if self.drop_after_store > 0:
            # Stored, but the client never hears so: it must retry without duplicating.
            self.drop_after_store -= 1
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        return web.json_response(body, status=201 if created else 200)

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {rid: body for (k, rid), body in self.resources.items() if k == kind}


@pytest.fixture
async def fhir_server() -> AsyncIterator[tuple[FhirServer, str]]:
    fhir = FhirServer()
    server = TestServer(fhir.app(), host="127.0.0.1")
    await server.start_server()
    yield fhir, str(server.make_url("/fhir"))
    await server.close()


@asynccontextmanager
async def teleconsult(settings: Settings) -> AsyncIterator[LiveServer]:
    """Our whole server (outbox worker included) on the given settings."""
    server = TestServer(create_app(settings), host="127.0.0.1")
    await server.start_server()
    issuer = issuer_from_settings(settings)
    assert issuer is not None
    try:
        async with ClientSession() as http:
            yield LiveServer(
                str(server.make_url("")).rstrip("/"), settings, issuer, http, server.app
            )
    finally:
        await server.close()


async def call(live: LiveServer, token: str, method: str, path: str, body: Any = None) -> Any:
    async with live.http.request(
        method, f"{live.url}{path}", json=body, headers=live.headers(token)
    ) as response:
        assert response.status < 300, await response.text()
        return await response.json()


async def sign_visit_documents(live: LiveServer) -> dict[str, Any]:
    """A visit where the doctor signs a note and a two-item prescription."""
    consult = await live.schedule_visit()
    doctor = live.token_of(consult, "dr-wang")
    note = await call(live, doctor, "POST", f"/api/consults/{consult['id']}/notes", NOTE)
    await call(live, doctor, "POST", f"/api/notes/{note['id']}/sign")
    items = [item(), item("C09AA02", "Enalapril", strength="10 mg", frequency="BID")]
    rx = await call(
        live, doctor, "POST", f"/api/consults/{consult['id']}/prescriptions", {"items": items}
    )
    await call(live, doctor, "POST", f"/api/prescriptions/{rx['id']}/sign")
    return {"consult": consult, "note": note, "prescription": rx}


async def outbox(live: LiveServer) -> list[dict[str, Any]]:
    return await call(live, live.token("admin-1", "admin", HOSPITAL), "GET", "/api/outbox")


async def wait_for_outbox(
    live: LiveServer, done: Callable[[list[dict[str, Any]]], bool], seconds: float = 30
) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for _ in range(int(seconds / 0.05)):
        entries = await outbox(live)
        if entries and done(entries):
            return entries
        await asyncio.sleep(0.05)
    raise AssertionError(f"outbox never got there: {entries}")


def all_delivered(entries: list[dict[str, Any]]) -> bool:
    return all(entry["status"] == "delivered" for entry in entries)


def assert_exactly_once(fhir: FhirServer, documents: dict[str, Any]) -> None:
    consult_id = documents["consult"]["id"]
    note_id, rx_id = documents["note"]["id"], documents["prescription"]["id"]
    assert fhir.invalid == []
    assert set(fhir.resources) == {
        ("Encounter", f"enc-{consult_id}"),
        ("Condition", f"cond-{note_id}-1"),
        ("Composition", f"note-{note_id}"),
        ("Provenance", f"prov-note-{note_id}"),
        ("Bundle", f"doc-{note_id}"),
        ("DocumentReference", f"docref-{note_id}"),
        ("MedicationRequest", f"rx-{rx_id}-1"),
        ("MedicationRequest", f"rx-{rx_id}-2"),
        ("Provenance", f"prov-rx-{rx_id}"),
    }
    assert set(fhir.creations.values()) == {1}
    encounter = fhir.of_type("Encounter")[f"enc-{consult_id}"]
    assert encounter["class"]["code"] == "VR"
    composition = fhir.of_type("Composition")[f"note-{note_id}"]
    assert [s["title"] for s in composition["section"]] == [
        "Subjective",
        "Objective",
        "Assessment",
        "Plan",
        "Diagnoses (ICD-10)",
    ]
    assert composition["section"][-1]["entry"] == [{"reference": f"Condition/cond-{note_id}-1"}]
    condition = fhir.of_type("Condition")[f"cond-{note_id}-1"]
    assert condition["code"]["coding"][0]["code"] == NOTE["diagnoses"][0]["code"]
    provenance = fhir.of_type("Provenance")[f"prov-note-{note_id}"]
    assert provenance["signature"][0]["data"] == documents["note_signature"]


def failed_total() -> float:
    return sum(
        REGISTRY.get_sample_value("teleconsult_outbox_failed_total", {"kind": kind}) or 0
        for kind in ("note", "prescription", "prescription_review")
    )


async def test_store_down_for_several_attempts_then_every_entry_delivered_exactly_once(
    database_url: str,
    settings_factory: Callable[..., Settings],
    fhir_server: tuple[FhirServer, str],
) -> None:
    fhir, base_url = fhir_server
    await asyncio.to_thread(upgrade, database_url)
    settings = settings_factory(
        database_url=database_url,
        record_store="fhir",
        fhir_base_url=base_url,
        outbox_backoff_seconds=0.02,
        outbox_max_attempts=50,
        outbox_poll_seconds=0.2,
    )
    fhir.fail_next = 8
    fhir.drop_after_store = 2
    async with teleconsult(settings) as live:
        documents = await sign_visit_documents(live)
        note = await call(
            live,
            live.token_of(documents["consult"], "dr-wang"),
            "GET",
            f"/api/notes/{documents['note']['id']}",
        )
        documents["note_signature"] = note["signature"]["value"]
        pharmacist = live.token("ph-zhao", "pharmacist")
        rx_id = documents["prescription"]["id"]
        await call(
            live, pharmacist, "POST", f"/api/prescriptions/{rx_id}/review", {"decision": "approve"}
        )
        entries = await wait_for_outbox(live, lambda e: len(e) == 3 and all_delivered(e))
    assert fhir.refused == 8
    assert sum(entry["attempts"] for entry in entries) > 3
    assert_exactly_once(fhir, documents)
    statuses = {r["status"] for r in fhir.of_type("MedicationRequest").values()}
    assert statuses == {"active"}  # the pharmacist's approval was delivered after the signing


async def test_restart_in_the_middle_of_delivery_loses_nothing_and_duplicates_nothing(
    database_url: str,
    settings_factory: Callable[..., Settings],
    fhir_server: tuple[FhirServer, str],
) -> None:
    fhir, base_url = fhir_server
    await asyncio.to_thread(upgrade, database_url)
    settings = settings_factory(
        database_url=database_url,
        record_store="fhir",
        fhir_base_url=base_url,
        outbox_backoff_seconds=0.05,
        outbox_lease_seconds=0.5,
        outbox_poll_seconds=0.2,
    )
    fhir.hold = asyncio.Event()
    async with teleconsult(settings) as live:
        documents = await sign_visit_documents(live)
        note = await call(
            live,
            live.token_of(documents["consult"], "dr-wang"),
            "GET",
            f"/api/notes/{documents['note']['id']}",
        )
        documents["note_signature"] = note["signature"]["value"]
        await asyncio.wait_for(fhir.held.wait(), 10)
    # Our server stopped while the FHIR server was still working on a request; it now
    # completes that request (the resource is stored) but nobody hears the answer.
    fhir.hold.set()
    fhir.hold = None
    async with teleconsult(settings) as live:
        entries = await wait_for_outbox(live, lambda e: len(e) == 2 and all_delivered(e))
    assert {entry["kind"] for entry in entries} == {"note", "prescription"}
    assert_exactly_once(fhir, documents)


async def test_an_entry_that_keeps_failing_is_counted_and_an_admin_retries_it(
    database_url: str,
    settings_factory: Callable[..., Settings],
    fhir_server: tuple[FhirServer, str],
) -> None:
    fhir, base_url = fhir_server
    await asyncio.to_thread(upgrade, database_url)
    settings = settings_factory(
        database_url=database_url,
        record_store="fhir",
        fhir_base_url=base_url,
        outbox_backoff_seconds=0.01,
        outbox_max_attempts=3,
        outbox_poll_seconds=0.2,
    )
    fhir.fail_always = True
    failed_before = failed_total()
    async with teleconsult(settings) as live:
        consult = await live.schedule_visit()
        doctor = live.token_of(consult, "dr-wang")
        note = await call(live, doctor, "POST", f"/api/consults/{consult['id']}/notes", NOTE)
        await call(live, doctor, "POST", f"/api/notes/{note['id']}/sign")
        entries = await wait_for_outbox(live, lambda e: e[0]["status"] == "failed")
        assert entries[0]["attempts"] == 3 and "503" in entries[0]["last_error"]
        assert failed_total() == failed_before + 1
        seen = await call(live, doctor, "GET", f"/api/notes/{note['id']}")
        assert seen["delivery"]["status"] == "failed"  # the doctor sees it too

        fhir.fail_always = False
        admin = live.token("admin-1", "admin", HOSPITAL)
        retried = await call(live, admin, "POST", f"/api/outbox/{entries[0]['id']}/retry")
        assert retried["status"] == "pending" and retried["attempts"] == 0
        await wait_for_outbox(live, all_delivered)
    assert ("Composition", f"note-{note['id']}") in fhir.resources


async def test_sql_record_store_writes_each_entry_once(live_server: LiveServer) -> None:
    documents = await sign_visit_documents(live_server)
    entries = await wait_for_outbox(live_server, lambda e: len(e) == 2 and all_delivered(e))
    assert {entry["kind"] for entry in entries} == {"note", "prescription"}

    # Deliver the same entries again, as a retry after a lost acknowledgement would.
    from sqlalchemy import func, select

    from clinical.models import RecordNote, RecordPrescription
    from outbox.models import OutboxEntry

    database = Database(live_server.settings.effective_database_url)
    try:
        async with database.sessions() as session:
            rows = list(await session.scalars(select(OutboxEntry)))
        store = SqlRecordStore(database)
        for row in rows:
            await store.deliver(Delivery(row.kind, row.idempotency_key, row.payload))
        async with database.sessions() as session:
            notes = await session.scalar(select(func.count()).select_from(RecordNote))
            prescriptions = list(await session.scalars(select(RecordPrescription)))
    finally:
        await database.dispose()
    assert notes == 1
    assert [p.id for p in prescriptions] == [documents["prescription"]["id"]]
