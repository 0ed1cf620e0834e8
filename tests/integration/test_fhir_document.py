"""Each signed note is a FHIR document for the regional platform: a document Bundle (Composition
first, then every resource it references, each resolving inside the Bundle) and a DocumentReference
delivered to the hospital's FHIR store, and the latest one read with
``GET /api/consults/{id}/document`` by those who may read the note."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from fhir.resources.R4B import get_fhir_model_class

from config.settings import Settings
from migrations.runner import upgrade
from tests.integration.clinical_helpers import NOTE, item
from tests.integration.live import LiveServer
from tests.integration.test_outbox_fhir import (
    FhirServer,
    all_delivered,
    call,
    teleconsult,
    wait_for_outbox,
)


@pytest.fixture
async def fhir_store() -> AsyncIterator[tuple[FhirServer, str]]:
    fhir = FhirServer()
    server = TestServer(fhir.app(), host="127.0.0.1")
    await server.start_server()
    yield fhir, str(server.make_url("/fhir"))
    await server.close()


def references(value: Any) -> Iterator[str]:
    """Every literal reference anywhere in a resource."""
    if isinstance(value, dict):
        for key, item_ in value.items():
            if key == "reference":
                yield item_
            else:
                yield from references(item_)
    elif isinstance(value, list):
        for item_ in value:
            yield from references(item_)


def assert_self_contained_document(bundle: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Checks a document Bundle; its resources by type."""
    get_fhir_model_class("Bundle").model_validate(bundle)
    assert bundle["type"] == "document"
    entries = bundle["entry"]
    assert entries[0]["resource"]["resourceType"] == "Composition"
    full_urls = {entry["fullUrl"] for entry in entries}
    assert len(full_urls) == len(entries)
    for entry in entries:
        resource = entry["resource"]
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
        for reference in references(resource):
            assert reference in full_urls, f"{resource['resourceType']} names {reference}"
    by_type: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        by_type.setdefault(entry["resource"]["resourceType"], []).append(entry["resource"])
    # Everything in the Bundle is the Composition or something it references.
    referenced = set(references(entries[0]["resource"]))
    assert {entry["fullUrl"] for entry in entries[1:]} <= referenced
    return by_type


async def get_document(live: LiveServer, token: str, consult_id: str) -> tuple[int, str, Any]:
    async with live.http.get(
        f"{live.url}/api/consults/{consult_id}/document", headers=live.headers(token)
    ) as response:
        return response.status, response.content_type, await response.json(content_type=None)


async def test_signed_note_is_a_self_contained_document_delivered_and_readable(
    database_url: str,
    settings_factory: Callable[..., Settings],
    fhir_store: tuple[FhirServer, str],
) -> None:
    fhir, base_url = fhir_store
    await asyncio.to_thread(upgrade, database_url)
    settings = settings_factory(
        database_url=database_url,
        record_store="fhir",
        fhir_base_url=base_url,
        outbox_backoff_seconds=0.02,
        outbox_poll_seconds=0.1,
    )
    async with teleconsult(settings) as live:
        consult = await live.schedule_visit(
            participants=[
                {"sub": "pt-li", "name": "Li Hua", "role": "patient"},
                {"sub": "dr-sun", "name": "Dr. Sun", "role": "doctor"},
            ]
        )
        doctor = live.token_of(consult, "dr-wang")
        colleague = live.token_of(consult, "dr-sun")
        outsider = live.token("dr-zhang", "doctor")
        # Nothing signed yet: 404 JSON for the consult's own doctor.
        status, content_type, body = await get_document(live, doctor, consult["id"])
        assert (status, content_type, body["error"]["code"]) == (
            404,
            "application/json",
            "note_not_found",
        )
        items = [item(), item("C09AA02", "Enalapril", strength="10 mg", frequency="BID")]
        rx = await call(
            live, doctor, "POST", f"/api/consults/{consult['id']}/prescriptions", {"items": items}
        )
        await call(live, doctor, "POST", f"/api/prescriptions/{rx['id']}/sign")
        note = await call(live, doctor, "POST", f"/api/consults/{consult['id']}/notes", NOTE)
        await call(live, doctor, "POST", f"/api/notes/{note['id']}/sign")
        await wait_for_outbox(live, lambda e: len(e) == 2 and all_delivered(e))

        status, content_type, bundle = await get_document(live, doctor, consult["id"])
        assert (status, content_type) == (200, "application/fhir+json")
        # The consult's other doctor reads the note, so the document too.
        status, _, colleague_bundle = await get_document(live, colleague, consult["id"])
        assert status == 200 and colleague_bundle == bundle
        # The patient, with the hospital portal's identity token, reads their signed note too.
        patient = live.token("pt-li", "patient", name="Li Hua")
        status, _, patient_bundle = await get_document(live, patient, consult["id"])
        assert status == 200 and patient_bundle == bundle
        # A doctor of the hospital outside the consult does not.
        status, content_type, body = await get_document(live, outsider, consult["id"])
        assert (status, content_type, body["error"]["code"]) == (
            404,
            "application/json",
            "note_not_found",
        )
        status, _, body = await get_document(live, doctor, "no-such-consult")
        assert (status, body["error"]["code"]) == (404, "consult_not_found")

    by_type = assert_self_contained_document(bundle)
    assert [c["code"]["coding"][0]["code"] for c in by_type["Condition"]] == ["I10"]
    assert len(by_type["MedicationRequest"]) == 2
    assert len(by_type["Encounter"]) == 1
    composition = by_type["Composition"][0]
    assert composition["identifier"]["value"] == note["id"]

    # The same document and its DocumentReference reached the FHIR store.
    assert fhir.invalid == []
    delivered = fhir.of_type("Bundle")[f"doc-{note['id']}"]
    assert delivered == bundle
    reference = fhir.of_type("DocumentReference")[f"docref-{note['id']}"]
    get_fhir_model_class("DocumentReference").model_validate(reference)
    assert reference["type"]["coding"][0]["code"] == "11488-4"
    assert reference["content"][0]["attachment"]["url"] == f"Bundle/doc-{note['id']}"
    assert reference["custodian"]["identifier"]["value"] == consult["hospital"]
    assert reference["subject"]["identifier"]["value"] == "pt-li"
    assert reference["author"][0]["identifier"]["value"] == "dr-wang"
    assert (reference["status"], reference["docStatus"]) == ("current", "final")
    assert reference["date"] == composition["date"]
